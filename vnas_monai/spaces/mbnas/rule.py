"""The one validity rule of the MB-NAS space (Bosma et al., "Mixed-Block Neural Architecture Search for Medical Image
Segmentation", SPIE Medical Imaging 2022, §2.1).

An encoding builds a network when

1. every node's resolution level (0 = full resolution, +1 per down-scaling cell, -1 per up-scaling cell) lies in
   ``[0, max_downsamplings]``: never above full resolution, never more halvings than the patch allows;
2. the last node is back at level 0 (the head predicts at full resolution);
3. every skip source is an earlier node, not the preceding one (that is the cell's input already), at the level of
   the node it feeds (its feature maps are concatenated with the cell's scaled input).

:func:`repair` is the rule: it walks the nodes in order and clamps each node's level into
``[0, min(max_downsamplings, nodes left after it)]`` (a step that would break 1. or make 2. unreachable becomes the
nearest allowed step, so the cell type changes to ``same`` or ``up``), then moves each invalid skip to the nearest
earlier node at the right level (the U-Net's partner of that level), or drops it when there is none. A valid encoding
is returned unchanged; with ``keep`` (the variable a caller just set, :meth:`MBNASEncoding.with_value`) an encoding
whose repair would change that very variable is refused (``None``): the option is not available there.
:func:`problems` lists what breaks 1.-3. (empty for the output of :func:`repair`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

__all__ = ["NO_SKIP", "STEPS", "levels_of", "problems", "repair"]

#: the level change of each channel option: ``down`` doubles the channels and halves the resolution (paper §2.1)
STEPS: dict[str, int] = {"down": 1, "same": 0, "up": -1}
_STEP_NAMES = {v: k for k, v in STEPS.items()}
#: the skip value of a node without a skip connection
NO_SKIP = -1


def levels_of(channels: Sequence[str]) -> list[int]:
    """The resolution level of every node (0 = full resolution), the input being at level 0; not clamped."""
    out, level = [], 0
    for c in channels:
        level += STEPS[c]
        out.append(level)
    return out


def _skip_ok(node: int, source: int, levels: Sequence[int]) -> bool:
    return 0 <= source <= node - 2 and levels[source] == levels[node]


def problems(encoding: Any) -> list[str]:
    """Why ``encoding`` cannot build a network (empty: it can), in node order."""
    levels = levels_of(encoding.channels)
    out = []
    for node, level in enumerate(levels):
        if level < 0:
            out.append(f"node {node} is above full resolution (level {level}).")
        elif level > encoding.max_downsamplings:
            out.append(f"node {node} is at level {level}, more than max_downsamplings={encoding.max_downsamplings}.")
    if levels and levels[-1] != 0:
        out.append(f"the last node ends at level {levels[-1]}, not at full resolution (0).")
    for node, source in enumerate(encoding.skips):
        if source == NO_SKIP:
            continue
        if not 0 <= source <= node - 2:
            out.append(f"node {node}'s skip source {source} is not an earlier node before the preceding one.")
        elif levels[source] != levels[node]:
            out.append(f"node {node} (level {levels[node]}) skips from node {source} at level {levels[source]}.")
    return out


def repair(encoding: Any, keep: str | None = None) -> Any:
    """The validity rule (module docstring): ``encoding`` made buildable, or ``None``.

    Args:
        encoding: an :class:`~vnas_monai.spaces.mbnas.MBNASEncoding` (any frozen dataclass with ``channels``,
            ``skips`` and ``max_downsamplings`` fields and a ``value_of(variable)`` method).
        keep: a variable name (``"channels.3"``, ``"skip.8"``, ...) the repair may not change; ``None``: any.

    Returns:
        ``encoding`` itself when it is valid; a repaired copy (same ``meta``, no probabilities) when the repair
        keeps ``keep``'s value; ``None`` when it would change it.
    """
    n, top = len(encoding.channels), int(encoding.max_downsamplings)
    channels, levels, level = [], [], 0
    for node, c in enumerate(encoding.channels):
        new = min(max(level + STEPS[c], 0), top, n - 1 - node)
        channels.append(_STEP_NAMES[new - level])
        levels.append(new)
        level = new
    skips = []
    for node, source in enumerate(encoding.skips):
        if source != NO_SKIP and not _skip_ok(node, source, levels):
            source = next((j for j in range(node - 2, -1, -1) if levels[j] == levels[node]), NO_SKIP)
        skips.append(source)
    if tuple(channels) == tuple(encoding.channels) and tuple(skips) == tuple(encoding.skips):
        return encoding
    fixed = dataclasses.replace(encoding, channels=tuple(channels), skips=tuple(skips), probabilities=None,
                                meta=dict(encoding.meta))
    if keep is not None and fixed.value_of(keep) != encoding.value_of(keep):
        return None
    return fixed
