"""The MB-NAS figures (Bosma et al., SPIE 2022, Fig. 2), written as PNGs on the Agg canvas, atomically
(:func:`vnas_monai.io.save_figure`):

* :func:`plot_encoding` (Fig. 2c, ``MBNASEncoding.plot``): nodes left to right, placed lower the coarser their
  resolution, coloured by block type and labelled with the kernel size, consecutive nodes joined by lines and skip
  connections drawn as arcs;
* :func:`plot_search_history` (Fig. 2a/b): each search's score against the evaluation count, every evaluated
  encoding as a dot and the best so far as a line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from vnas_monai.io import save_figure

from .encoding import BLOCK_TYPES, MBNASEncoding
from .rule import NO_SKIP

__all__ = ["BLOCK_COLORS", "plot_encoding", "plot_search_history"]

#: the colour of each block type
BLOCK_COLORS: dict[str, str] = {"vgg": "tab:blue", "residual": "tab:orange", "dense": "tab:green",
                                "inception": "tab:red"}


def plot_encoding(encoding: MBNASEncoding | str | os.PathLike, path: str | os.PathLike, title: str | None = None,
                  dpi: int = 100) -> Path:
    """Draw ``encoding`` (an encoding or its JSON file) as a PNG at ``path``; returns the path.

    Args:
        encoding: the network to draw (valid or not: the levels are drawn as encoded).
        path: destination ``.png``.
        title: figure title; default: the digest and the number of nodes.
        dpi: resolution.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch

    enc = MBNASEncoding.resolve(encoding)
    levels = enc.levels()
    depth = max([0, *levels])
    n = enc.num_nodes
    fig = Figure(figsize=(1.0 + 0.75 * (n + 2), 1.6 + 0.75 * (depth + 1)))
    ax = fig.add_axes((0.08, 0.07, 0.9, 0.75))
    ax.set_xlim(-0.7, n + 1.7)
    spans = [node - s for node, s in enumerate(enc.skips) if s != NO_SKIP]
    ax.set_ylim(-depth - 0.8, 0.9 + 0.2 * max([0, *spans]))
    ax.set_yticks([-level for level in range(depth + 1)])
    ax.set_yticklabels([f"1/{2 ** level}" for level in range(depth + 1)], fontsize=7)
    ax.set_ylabel("resolution", fontsize=8)
    ax.set_xticks([])
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    points = [(0.0, 0.0)] + [(float(node + 1), float(-level)) for node, level in enumerate(levels)]
    points.append((float(n + 1), 0.0))
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        ax.plot([x0, x1], [y0, y1], color="0.35", lw=1.2, zorder=1)
    size = 0.56
    for label, (x, y) in (("in", points[0]), ("out", points[-1])):
        ax.add_patch(FancyBboxPatch((x - size / 2, y - size / 2), size, size, boxstyle="round,pad=0.02", fc="0.85",
                                    ec="0.3", zorder=2))
        ax.text(x, y, label, ha="center", va="center", fontsize=7, zorder=3)
    for node in range(n):
        x, y = points[node + 1]
        ax.add_patch(FancyBboxPatch((x - size / 2, y - size / 2), size, size, boxstyle="round,pad=0.02",
                                    fc=BLOCK_COLORS[enc.blocks[node]], ec="0.2", zorder=2))
        ax.text(x, y, str(enc.kernels[node]), ha="center", va="center", fontsize=8, weight="bold", color="white",
                zorder=3)
        ax.text(x, y - size / 2 - 0.08, f"N{node}", ha="center", va="top", fontsize=6, zorder=3)
        source = enc.skips[node]
        if source != NO_SKIP:
            (xs, ys), span = points[source + 1], node - source
            ax.add_patch(FancyArrowPatch((xs, ys + size / 2), (x, y + size / 2), connectionstyle=f"arc3,rad=-{0.3}",
                                         arrowstyle="-|>", mutation_scale=8, color="0.2", lw=0.9, zorder=1,
                                         shrinkA=2, shrinkB=2, alpha=0.5 + 0.5 / span))
    fig.text(0.99, 0.01, "box: kernel size; arcs: skip connections (concatenated)", ha="right", va="bottom",
             fontsize=6)
    fig.suptitle(title or f"MB-NAS network {enc.digest()} ({n} nodes)", fontsize=9, y=0.98)
    handles = [Patch(color=BLOCK_COLORS[b], label=b) for b in BLOCK_TYPES]
    fig.legend(handles=handles, loc="upper right", fontsize=7, ncol=4, frameon=False, bbox_to_anchor=(0.99, 0.93))
    return save_figure(fig, path, dpi)


def plot_search_history(histories: Mapping[str, Sequence[tuple[int, str, float]]], path: str | os.PathLike,
                        title: str = "local search", reference: Mapping[str, float] | None = None,
                        dpi: int = 100) -> Path:
    """Score against evaluation count (Fig. 2a/b) of one or more searches; returns the path.

    Args:
        histories: ``{search name: [(evaluation, digest, score), ...]}`` (``SearchResult.history``, or the
            ``history`` of a ``best.json``'s ``local_search`` as dicts).
        path: destination ``.png``.
        title: figure title.
        reference: horizontal lines, e.g. ``{"U-Net start": 0.81}``.
        dpi: resolution.

    Raises:
        ValueError: no search or an empty history.
    """
    from matplotlib.figure import Figure

    if not histories:
        raise ValueError("plot_search_history needs at least one search history.")
    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.add_subplot(1, 1, 1)
    for i, (name, history) in enumerate(histories.items()):
        rows = [(h["evaluation"], h["score"]) if isinstance(h, Mapping) else (h[0], h[2]) for h in history]
        if not rows:
            raise ValueError(f"the history of search {name!r} is empty.")
        rows.sort()
        xs, ys = [r[0] for r in rows], [r[1] for r in rows]
        best = [max(ys[:k + 1]) for k in range(len(ys))]
        color = f"C{i}"
        ax.scatter(xs, ys, s=9, color=color, alpha=0.45)
        ax.step(xs, best, where="post", color=color, lw=1.6, label=f"{name} (best {best[-1]:.4f})")
    for j, (name, value) in enumerate((reference or {}).items()):
        ax.axhline(value, color="0.3", ls=("--", ":", "-.")[j % 3], lw=1.0, label=f"{name} ({value:.4f})")
    ax.set_xlabel("evaluations (distinct encodings scored)")
    ax.set_ylabel("score: validation Dice, mean of the last 20 % epochs")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi)
