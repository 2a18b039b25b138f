"""``python -m vnas_monai paired``: paired per-case comparison of benchmark rows on the same held-out cases."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vnas_monai.evaluation.paired import format_paired, paired_difference

from .command import split_names
from .evaluate import read_result

__all__ = ["paired", "read_row"]


def read_row(work_dir: str | Path, row: str) -> dict[str, Any]:
    """One benchmark row's per-case records, as :func:`paired_difference` takes them.

    ``row`` is a method name in ``work_dir`` or a path to a row's folder (one with a ``/``, e.g. a row of an earlier
    run kept under ``benchmarks/results``). The folder's ``result.json`` is read where it exists, else the
    ``metrics.csv`` its evaluation wrote; the row is named after its folder.

    Raises:
        FileNotFoundError: the folder holds neither file.
    """
    from vnas_monai.evaluation import read_metrics

    folder = Path(row) if "/" in row else Path(work_dir) / row
    if (folder / "result.json").is_file():
        return read_result(folder / "result.json")
    if (folder / "metrics.csv").is_file():
        records, _ = read_metrics(folder / "metrics.csv")
        return {"method": folder.name, "records": records}
    raise FileNotFoundError(f"no finished benchmark row {row!r}: {folder} holds neither result.json nor metrics.csv.")


def paired(work_dir: str, method: str, against: str | Sequence[str], output: str | None = None) -> str:
    """Compare one benchmark row with others on the same held-out cases: per-case Dice (mean over the foreground
    classes) of ``method`` minus each row of ``against``, and minus their mean when there are several (e.g. the three
    random architectures): mean difference ± standard error, wins / losses, Wilcoxon signed-rank p.

    Rows are method names in ``work_dir`` or paths to row folders of other runs of the same fold
    (:func:`read_row`). Example: ``python -m vnas_monai paired --work_dir runs/b30 --method vnas
    --against vnas_random1,vnas_random2,vnas_random3``. ``output``: also write the figures as JSON.
    """
    others = split_names(against)
    if not others:
        raise ValueError("--against names no benchmark row (comma-separated method names).")
    results = {name: read_row(work_dir, name) for name in [method, *others]}
    rows = [paired_difference(results[method], [results[o]]) for o in others]
    if len(others) > 1:
        rows.append(paired_difference(results[method], [results[o] for o in others]))
    if output:
        from vnas_monai.io import atomic_write_text

        atomic_write_text(Path(output), json.dumps(rows, indent=1) + "\n")
    return "\n".join(format_paired(r) for r in rows)
