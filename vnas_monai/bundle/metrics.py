"""Per-case segmentation metrics and the paper's summary (Zhu et al., 3DV 2019, Tables 2-4).

For every case and every foreground class: Dice-Sorensen coefficient, 95 % Hausdorff distance (mm) and surface Dice
at a tolerance in mm, all computed with MONAI's metric functions on the grid the network saw, with that grid's voxel
spacing. Written as

* ``metrics.csv``: one row per case and class (``case, class, dice, hd95_mm, surface_dice``);
* ``summary.json``: per class and metric ``mean``, ``std`` (population, ddof=0), ``max``, ``min``, ``median`` and
  ``n`` (finite values only: a class absent from a case's ground truth gives NaN Dice, an empty prediction an
  infinite HD95; both are left out of the statistics and counted in ``n_undefined``);
* ``summary.md``: the paper's table, Dice and surface Dice in %, ``mean ± std``, max, min, median per class.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vnas_monai.io import atomic_write_text

__all__ = [
    "METRICS",
    "SegmentationMetricsWriter",
    "case_metrics",
    "format_markdown",
    "summarize",
    "write_reports",
]

logger = logging.getLogger(__name__)

#: Metric names, in column order.
METRICS: tuple[str, ...] = ("dice", "hd95_mm", "surface_dice")
_PERCENT = {"dice", "surface_dice"}


def _as_index_map(x: Any, name: str) -> torch.Tensor:
    t = torch.as_tensor(x.detach().cpu() if isinstance(x, torch.Tensor) else np.asarray(x))
    t = t.as_tensor() if hasattr(t, "as_tensor") else t
    if t.ndim == 4 and t.shape[0] == 1:
        t = t[0]
    elif t.ndim == 4:
        t = t.argmax(0)  # one-hot / probabilities, channel first
    if t.ndim != 3:
        raise ValueError(f"{name} must be a 3D label map (optionally with one channel), got shape {tuple(t.shape)}.")
    return t.round().long()


def _one_hot(index: torch.Tensor, num_classes: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(index.clamp(0, num_classes - 1), num_classes).permute(3, 0, 1, 2)[None].float()


def case_metrics(
    pred: Any, label: Any, num_classes: int, spacing: Sequence[float] | None = None, tolerance_mm: float = 1.0
) -> dict[str, list[float]]:
    """Dice, HD95 (mm) and surface Dice of one case, per foreground class ``1 .. num_classes - 1``.

    Args:
        pred: predicted label map, (H, W, D) or (1, H, W, D), or class scores (C, H, W, D).
        label: ground-truth label map of the same grid.
        num_classes: classes including background.
        spacing: voxel size in mm (``None``: 1 mm).
        tolerance_mm: surface Dice tolerance.

    Returns:
        ``{"dice": [...], "hd95_mm": [...], "surface_dice": [...]}``, one value per foreground class; NaN where the
        class is absent from the ground truth (Dice) or from both maps, ``inf`` (HD95) / 0 where only one has it.

    Raises:
        ValueError: shapes differ or ``num_classes`` < 2.
    """
    from monai.metrics import compute_dice, compute_hausdorff_distance, compute_surface_dice

    if int(num_classes) < 2:
        raise ValueError(f"num_classes must be >= 2 (background + a class), got {num_classes}.")
    p, y = _as_index_map(pred, "pred"), _as_index_map(label, "label")
    if p.shape != y.shape:
        raise ValueError(f"prediction shape {tuple(p.shape)} differs from label shape {tuple(y.shape)}.")
    p1, y1 = _one_hot(p, num_classes), _one_hot(y, num_classes)
    sp = [float(s) for s in spacing] if spacing is not None else None
    import warnings

    with warnings.catch_warnings():  # MONAI warns about empty classes; they are reported as NaN / inf
        warnings.simplefilter("ignore")
        dice = compute_dice(p1, y1, include_background=False, ignore_empty=True)[0]
        hd95 = compute_hausdorff_distance(p1, y1, include_background=False, percentile=95, spacing=sp)[0]
        nsd = compute_surface_dice(
            p1, y1, class_thresholds=[float(tolerance_mm)] * (num_classes - 1), include_background=False, spacing=sp
        )[0]
    out = {
        "dice": [float(v) for v in dice],
        "hd95_mm": [float(v) for v in hd95],
        "surface_dice": [float(v) for v in nsd],
    }
    for c in range(1, num_classes):
        in_p, in_y = bool((p == c).any()), bool((y == c).any())
        if not in_y:
            out["dice"][c - 1] = math.nan
        if in_y != in_p:
            out["hd95_mm"][c - 1] = math.inf
        elif not in_y:
            out["hd95_mm"][c - 1] = out["surface_dice"][c - 1] = math.nan
    return out


def _stats(values: Sequence[float]) -> dict[str, Any]:
    finite = np.array([v for v in values if math.isfinite(v)], dtype=float)
    stats: dict[str, Any] = {"n": int(finite.size), "n_undefined": int(len(values) - finite.size)}
    for name, fn in (("mean", np.mean), ("std", np.std), ("max", np.max), ("min", np.min), ("median", np.median)):
        stats[name] = float(fn(finite)) if finite.size else None
    return stats


def _check_records(records: Sequence[Mapping[str, Any]], class_names: Sequence[str]) -> None:
    for r in records:
        if "case" not in r or not all(len(r.get(m, ())) == len(class_names) for m in METRICS):
            raise ValueError(
                f"metric record {r!r} must have 'case' and one value per class {list(class_names)} for each of "
                f"{list(METRICS)}."
            )


def summarize(records: Sequence[Mapping[str, Any]], class_names: Sequence[str]) -> dict[str, Any]:
    """The paper's summary: per class, per metric, mean / std / max / min / median over the cases.

    Args:
        records: ``{"case": name, "dice": [...], "hd95_mm": [...], "surface_dice": [...]}`` per case, one value per
            foreground class (as :func:`case_metrics` returns, plus ``case``).
        class_names: foreground class names, in class order.
    """
    _check_records(records, class_names)
    classes = {
        name: {m: _stats([float(r[m][i]) for r in records]) for m in METRICS} for i, name in enumerate(class_names)
    }
    return {"num_cases": len(records), "classes": classes}


def _fmt(value: float | None, metric: str) -> str:
    if value is None:
        return "n/a"
    return f"{value * 100:.2f}" if metric in _PERCENT else f"{value:.2f}"


def format_markdown(summary: Mapping[str, Any], title: str | None = None) -> str:
    """Markdown table of :func:`summarize`'s output: Dice and surface Dice in %, HD95 in mm."""
    lines = [f"# {title}", ""] if title else []
    lines += [
        f"{summary['num_cases']} case(s). Dice and surface Dice in %, HD95 in mm; mean ± std (population), max, min "
        "and median over cases with a defined value (n).",
        "",
        "| class | metric | mean ± std | max | min | median | n |",
        "|---|---|---|---|---|---|---|",
    ]
    names = {"dice": "Dice (DSC)", "hd95_mm": "HD95 (mm)", "surface_dice": "surface Dice"}
    for cls, metrics in summary["classes"].items():
        for m in METRICS:
            s = metrics[m]
            mean = "n/a" if s["mean"] is None else f"{_fmt(s['mean'], m)} ± {_fmt(s['std'], m)}"
            row = [cls, names[m], mean, _fmt(s["max"], m), _fmt(s["min"], m), _fmt(s["median"], m), str(s["n"])]
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def write_reports(
    records: Sequence[Mapping[str, Any]],
    output_dir: str | os.PathLike,
    class_names: Sequence[str],
    settings: Mapping[str, Any] | None = None,
    title: str | None = None,
) -> dict[str, Any]:
    """Write ``metrics.csv``, ``summary.json`` and ``summary.md`` into ``output_dir`` (atomically); returns the
    summary (``settings`` are stored in it as they are)."""
    out = Path(output_dir)
    summary = summarize(records, class_names)
    if settings:
        summary["settings"] = dict(settings)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["case", "class", *METRICS])
    for r in records:
        for i, name in enumerate(class_names):
            writer.writerow([r["case"], name, *(repr(float(r[m][i])) for m in METRICS)])
    atomic_write_text(out / "metrics.csv", buf.getvalue())
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1, allow_nan=False) + "\n")
    atomic_write_text(out / "summary.md", format_markdown(summary, title))
    return summary


def _spacing_of(x: Any) -> list[float] | None:
    pixdim = getattr(x, "pixdim", None)
    if pixdim is None:
        return None
    return [float(v) for v in (pixdim.tolist() if hasattr(pixdim, "tolist") else pixdim)][:3]


class SegmentationMetricsWriter:
    """Ignite handler for a MONAI evaluator: per-case metrics at every iteration, reports at completion.

    The evaluator's decollated output items must hold ``pred`` and ``label`` label maps (or class scores) on the same
    grid, as MetaTensors (their ``pixdim`` gives the spacing; their source file names the case). At ``COMPLETED``
    :func:`write_reports` writes ``metrics.csv``, ``summary.json`` and ``summary.md`` into ``output_dir`` and the
    table is logged.

    Args:
        output_dir: folder of the reports.
        class_names: all class names, background first (``num_classes`` = its length).
        tolerance_mm: surface Dice tolerance.
        settings: stored in ``summary.json`` (e.g. the checkpoint, fold and architecture).
        title: heading of ``summary.md``.
        pred_key, label_key, image_key: keys of the output items.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        class_names: Sequence[str],
        tolerance_mm: float = 1.0,
        settings: Mapping[str, Any] | None = None,
        title: str | None = None,
        pred_key: str = "pred",
        label_key: str = "label",
        image_key: str = "image",
    ) -> None:
        names = [str(n) for n in class_names]
        if len(names) < 2:
            raise ValueError(f"class_names must list background and at least one class, got {names}.")
        self.output_dir = Path(output_dir)
        self.class_names = names
        self.tolerance_mm = float(tolerance_mm)
        self.settings = dict(settings or {})
        self.title = title
        self.pred_key, self.label_key, self.image_key = pred_key, label_key, image_key
        self.records: list[dict[str, Any]] = []
        self.summary: dict[str, Any] | None = None

    def attach(self, engine: Any) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.STARTED, self.reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.iteration_completed)
        engine.add_event_handler(Events.COMPLETED, self.completed)

    def reset(self, engine: Any = None) -> None:
        self.records = []
        self.summary = None

    def iteration_completed(self, engine: Any) -> None:
        from vnas_monai.bundle.datalists import case_name

        output = engine.state.output
        items = output if isinstance(output, (list, tuple)) else [output]
        for item in items:
            if self.label_key not in item or not isinstance(item[self.label_key], torch.Tensor):
                raise ValueError(f"evaluation needs a label for every case; an output item lacks '{self.label_key}'.")
            pred, label = item[self.pred_key], item[self.label_key]
            source = getattr(item.get(self.image_key, pred), "meta", {}).get("filename_or_obj", "")
            name = case_name(source) if source else f"case_{len(self.records):04d}"
            values = case_metrics(pred, label, len(self.class_names), _spacing_of(label), self.tolerance_mm)
            self.records.append({"case": name, **values})

    def completed(self, engine: Any) -> None:
        if not self.records:
            raise ValueError("no case was evaluated: the evaluation datalist is empty.")
        settings = {"tolerance_mm": self.tolerance_mm, **self.settings}
        self.summary = write_reports(self.records, self.output_dir, self.class_names[1:], settings, self.title)
        logger.info("evaluation of %d case(s) -> %s\n%s", len(self.records), self.output_dir,
                    format_markdown(self.summary))
