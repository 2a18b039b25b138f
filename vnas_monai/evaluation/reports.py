"""The evaluation's files: ``metrics.csv`` (one row per case and class: ``case, class, dice, hd95_mm,
surface_dice``), ``summary.json`` (:func:`vnas_monai.evaluation.metrics.summarize`, with the run's settings) and
``summary.md`` (the paper's table, Zhu et al. 3DV 2019 Tables 2-4: Dice and surface Dice in %, ``mean ± std``, max,
min, median per class), written atomically."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vnas_monai.evaluation.metrics import METRICS, PERCENT_METRICS, summarize
from vnas_monai.io import atomic_write_text

__all__ = ["format_markdown", "read_metrics", "write_reports"]


def _fmt(value: float | None, metric: str) -> str:
    if value is None:
        return "n/a"
    return f"{value * 100:.2f}" if metric in PERCENT_METRICS else f"{value:.2f}"


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


def read_metrics(path: str | os.PathLike, case_prefix: str = "") -> tuple[list[dict[str, Any]], list[str]]:
    """Read a ``metrics.csv`` written by :func:`write_reports` back into per-case records
    (``{"case", "dice": [...], "hd95_mm": [...], "surface_dice": [...]}``, one value per class) and the class names,
    in the file's order; ``case_prefix`` is put before every case name (e.g. ``"fold0/"``).

    Raises:
        FileNotFoundError: no such file.
        ValueError: a row or column the writer does not write (the message names the file).
    """
    path = Path(path)
    records: dict[str, dict[str, Any]] = {}
    classes: list[str] = []
    with path.open() as f:
        reader = csv.DictReader(f)
        missing = {"case", "class", *METRICS} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path} is not a metrics.csv: it has no column(s) {sorted(missing)}.")
        try:
            for row in reader:
                if row["class"] not in classes:
                    classes.append(row["class"])
                rec = records.setdefault(case_prefix + row["case"], {"case": case_prefix + row["case"]})
                for metric in METRICS:
                    rec.setdefault(metric, []).append(float(row[metric]))
        except (TypeError, ValueError) as e:
            raise ValueError(f"{path}, line {reader.line_num}: {e}") from e
    return list(records.values()), classes
