"""Comparison tables of methods, as the benchmark command writes them (paper format: Dice mean ± std / max / min /
median per class, HD95, surface Dice, params, MACs, train time) as Markdown, CSV and JSON, and a box plot of
per-case Dice per method."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vnas_monai.evaluation.metrics import METRICS
from vnas_monai.io import atomic_write_png, atomic_write_text

__all__ = ["case_mean", "table_rows", "write_tables", "write_boxplot"]

logger = logging.getLogger(__name__)
_COLUMNS = ("method", "class", "n", "dice_mean", "dice_std", "dice_max", "dice_min", "dice_median", "hd95_mean",
            "hd95_std", "surface_dice_mean", "surface_dice_std", "params", "macs", "train_time_s", "steps")


def _finite(values: Sequence[float]) -> np.ndarray:
    a = np.asarray(values, dtype=float)
    return a[np.isfinite(a)]


def _stat(a: np.ndarray, fn: Any) -> float | None:
    return float(fn(a)) if a.size else None


def case_mean(values: Sequence[float]) -> float:
    """Mean over a case's classes: infinite if any is (an empty prediction), NaN classes (absent) left out."""
    a = np.asarray(values, dtype=float)
    if np.isinf(a).any():
        return float("inf")
    return float(np.nanmean(a)) if np.isfinite(a).any() else float("nan")


def table_rows(results: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per method and class, and a ``mean`` row per method (the per-case mean over the foreground classes):
    statistics over the held-out cases with a defined value (NaN Dice of an absent class and infinite HD95 of an
    empty prediction are left out and counted in ``undefined``)."""
    rows = []
    for res in results:
        recs, meta = res["records"], res["meta"]
        names = [*res["class_names"][1:], "mean"]
        per = {m: [[r[m][i] for r in recs] for i in range(len(names) - 1)] for m in METRICS}
        for m in METRICS:
            per[m].append([case_mean(r[m]) for r in recs])
        for i, cls in enumerate(names):
            dice, hd, nsd = (_finite(per[m][i]) for m in METRICS)
            rows.append({
                "method": res["method"], "class": cls, "n": int(dice.size), "undefined": len(recs) - int(dice.size),
                "dice_mean": _stat(dice, np.mean), "dice_std": _stat(dice, np.std), "dice_max": _stat(dice, np.max),
                "dice_min": _stat(dice, np.min), "dice_median": _stat(dice, np.median),
                "hd95_mean": _stat(hd, np.mean), "hd95_std": _stat(hd, np.std),
                "surface_dice_mean": _stat(nsd, np.mean), "surface_dice_std": _stat(nsd, np.std),
                "params": meta.get("params"), "macs": meta.get("macs"), "train_time_s": meta.get("train_time_s"),
                "steps": meta.get("steps"),
            })
    return rows


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}"


def _markdown(rows: Sequence[Mapping[str, Any]], title: str, notes: Sequence[str]) -> str:
    lines = [f"# {title}", "", *notes, "",
             "| method | class | Dice mean ± std | max | min | median | HD95 (mm) | surface Dice | params (M) | "
             "GMACs | train (s) | steps | n |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        hd = "n/a" if r["hd95_mean"] is None else f"{r['hd95_mean']:.2f} ± {r['hd95_std']:.2f}"
        nsd = "n/a" if r["surface_dice_mean"] is None else (
            f"{_pct(r['surface_dice_mean'])} ± {_pct(r['surface_dice_std'])}")
        dice = "n/a" if r["dice_mean"] is None else f"{_pct(r['dice_mean'])} ± {_pct(r['dice_std'])}"
        cls = f"**{r['class']}**" if r["class"] == "mean" else r["class"]
        params = "" if r["params"] is None else f"{r['params'] / 1e6:.2f}"
        macs = "" if r["macs"] is None else f"{r['macs'] / 1e9:.2f}"
        lines.append(f"| {r['method']} | {cls} | {dice} | {_pct(r['dice_max'])} | {_pct(r['dice_min'])} | "
                     f"{_pct(r['dice_median'])} | {hd} | {nsd} | {params} | {macs} | {r['train_time_s'] or ''} | "
                     f"{r['steps'] or ''} | {r['n']} |")
    return "\n".join(lines) + "\n"


def write_tables(
    results: Sequence[Mapping[str, Any]],
    out_dir: str | os.PathLike,
    settings: Mapping[str, Any],
    stem: str = "benchmark",
) -> dict[str, Path]:
    """Write ``<stem>.md``, ``<stem>.csv``, ``<stem>.json`` and ``<stem>_dice.png`` into ``out_dir`` (atomically)."""
    out = Path(out_dir)
    rows = table_rows(results)
    notes = [
        f"Dataset {settings.get('dataset_dir')}, fold {settings.get('fold')} of {settings.get('num_folds')}, "
        f"{settings.get('num_test')} held-out cases; budget {settings.get('budget_s')} s per method "
        f"({settings.get('threads')} thread(s)).",
        "Dice and surface Dice (tolerance 1 mm) in %, HD95 in mm; mean ± std (population) over held-out cases; "
        "`mean` rows average the classes per case. MACs: convolutions, one forward pass at the method's patch.",
        f"Plan: {settings.get('plan_summary')}",
    ]
    paths = {"md": out / f"{stem}.md", "csv": out / f"{stem}.csv", "json": out / f"{stem}.json",
             "png": out / f"{stem}_dice.png"}
    atomic_write_text(paths["md"], _markdown(rows, "Benchmark", notes))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=[*_COLUMNS, "undefined"], lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(paths["csv"], buf.getvalue())
    doc = {"settings": dict(settings), "rows": rows,
           "methods": {res["method"]: {"meta": res["meta"], "settings": res["settings"]} for res in results}}
    atomic_write_text(paths["json"], json.dumps(doc, indent=1, default=str) + "\n")
    write_boxplot(results, paths["png"])
    return paths


def write_boxplot(results: Sequence[Mapping[str, Any]], path: str | os.PathLike) -> Path:
    """Box plot of per-case Dice (%) per method, one box per method and foreground class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = results[0]["class_names"][1:] if results else []
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(results) * max(1, len(names))), 4.0))
    data, labels, colours = [], [], []
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for res in results:
        for i, cls in enumerate(names):
            data.append(100 * _finite([r["dice"][i] for r in res["records"]]))
            labels.append(f"{res['method']}\n{cls}")
            colours.append(palette[i % len(palette)])
    if data:
        box = ax.boxplot(data, patch_artist=True, showmeans=True)
        for patch, c in zip(box["boxes"], colours):
            patch.set_facecolor(c)
            patch.set_alpha(0.5)
        ax.set_xticks(range(1, len(labels) + 1), labels, fontsize=8)
    ax.set_ylabel("Dice (%) per held-out case")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    try:
        return atomic_write_png(path, fig, dpi=120)
    finally:
        plt.close(fig)
