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
) -> str:
    """Print (and return) the outcome of a search: the architecture if the search decided it (median cell margin,
    best minus second-best probability, of at least :data:`vnas_monai.spaces.vnas.DECIDED_MARGIN`), else that it is
    undecided and why (a short run's architecture steps barely move alpha and beta from uniform)."""
    arch = network.derive()
    decision = arch.decision()
    enc, dec = arch.to_paper()
    arch_file = os.path.join(str(output_dir), "arch.json")
    margin = f"median cell margin {decision['median_margin']:.3f}"
    if not decision["decided"]:
        steps = "no epoch" if max_epochs is None else f"{max(int(max_epochs) - int(arch_warmup_epochs), 0)} epoch(s)"
        message = (
            f"architecture undecided: {margin} < {decision['threshold']:.2f} (best minus second-best probability), "
            f"so the argmax (encoder [{enc}]  decoder [{dec}]) is not a finding. Too few architecture steps: "
            f"{steps} of architecture updates after {arch_warmup_epochs} warm-up epoch(s); search longer (the paper "
            f"runs 40,000 iterations) or raise arch_learning_rate. Written to {arch_file}"
        )
    else:
        message = (f"searched architecture (0=2D, 1=3D, 2=P3D): encoder [{enc}]  decoder [{dec}], {margin}; "
                   f"written to {arch_file}")
    print(message)
    return message
