"""``python -m vnas_monai paired``: paired per-case comparison of benchmark rows in one work_dir."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from vnas_monai.evaluation.paired import format_paired, paired_difference

from .command import split_names
from .evaluate import read_result

__all__ = ["paired"]


def paired(work_dir: str, method: str, against: str | Sequence[str], output: str | None = None) -> str:
    """Compare one benchmark row with others on the same held-out cases: per-case Dice (mean over the foreground
    classes) of ``method`` minus each row of ``against``, and minus their mean when there are several (e.g. the three
    random architectures): mean difference ± standard error, wins / losses, Wilcoxon signed-rank p.

    Example: ``python -m vnas_monai paired --work_dir runs/b30 --method vnas
    --against vnas_random1,vnas_random2,vnas_random3``. ``output``: also write the figures as JSON.
    """
    work = Path(work_dir)
    others = split_names(against)
    if not others:
        raise ValueError("--against names no benchmark row (comma-separated method names).")
    results = {}
    for name in [method, *others]:
        path = work / name / "result.json"
        if not path.is_file():
            raise FileNotFoundError(f"no finished benchmark row {name!r}: {path} does not exist.")
        results[name] = read_result(path)
    rows = [paired_difference(results[method], [results[o]]) for o in others]
    if len(others) > 1:
        rows.append(paired_difference(results[method], [results[o] for o in others]))
    if output:
        from vnas_monai.io import atomic_write_text

        atomic_write_text(Path(output), json.dumps(rows, indent=1) + "\n")
    return "\n".join(format_paired(r) for r in rows)
