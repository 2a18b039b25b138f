"""What a training stage does when it finishes: drop the last epoch's checkpoint when it is a byte-identical copy
of the final one, and report a search's outcome without presenting an undecided search as a finding."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["prune_checkpoints", "report_search"]


def prune_checkpoints(output_dir: str | os.PathLike, final: str = "checkpoint_final.pt") -> list[str]:
    """Delete the ``checkpoint_epoch=N.pt`` files that are byte-identical to ``final`` (after a complete run the last
    epoch's checkpoint is the final one again: two identical files of up to tens of MB). Returns the deleted paths."""
    import filecmp

    folder = Path(output_dir)
    target = folder / final
    if not target.is_file():
        return []
    removed = []
    for path in sorted(folder.glob("checkpoint_epoch=*.pt")):
        if path.stat().st_size == target.stat().st_size and filecmp.cmp(path, target, shallow=False):
            path.unlink()
            removed.append(str(path))
    return removed


def report_search(
    network: Any, output_dir: str | os.PathLike, arch_warmup_epochs: int = 0, max_epochs: int | None = None,
    tolerance: float | None = None,
) -> str:
    """Print (and return) the outcome of a search: the architecture if the probabilities decided it, else that the
    search is undecided and why (a short demo run's architecture steps barely move alpha and beta from uniform)."""
    from vnas_monai.engine.plots import UNDECIDED_TOLERANCE

    tol = UNDECIDED_TOLERANCE if tolerance is None else float(tolerance)
    probs = network.arch_probabilities()
    rows = [row for part in ("encoder", "decoder") for row in probs[part].tolist()]
    spread = max(abs(v - 1.0 / len(row)) for row in rows for v in row)
    enc, dec = network.derive().to_paper()
    arch_file = os.path.join(str(output_dir), "arch.json")
    if spread < tol:
        steps = "no epoch" if max_epochs is None else f"{max(int(max_epochs) - int(arch_warmup_epochs), 0)} epoch(s)"
        message = (
            f"architecture undecided: every choice probability is within {spread:.3f} of uniform (1/3, tolerance "
            f"{tol}), so the argmax (encoder [{enc}]  decoder [{dec}]) is not a finding. Too few architecture steps: "
            f"{steps} of architecture updates after {arch_warmup_epochs} warm-up epoch(s); search longer (the paper "
            f"runs 40,000 iterations). Written to {arch_file}"
        )
    else:
        message = f"searched architecture (0=2D, 1=3D, 2=P3D): encoder [{enc}]  decoder [{dec}]; written to {arch_file}"
    print(message)
    return message
