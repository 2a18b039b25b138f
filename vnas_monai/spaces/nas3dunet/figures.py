"""The derived cells drawn as in Fig. 6 of Wang, BraTS 2019: (a) the downward cell, (b) the upward cell.

Each panel shows the inputs X0 / X1 with their preprocessing (pre0 with stride 2, pre1), the three nodes (red dashed
frames) with their two kept hybrid modules (one box per HM with its op name, coloured by kind: DHM blue, UHM green,
NHM orange) and the sum of each node, and the concatenation C of the nodes into the cell output
(:meth:`.genotype.Genotype.plot`). Drawn on matplotlib's Agg canvas, without pyplot.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vnas_monai.io import save_figure

from .genotype import Genotype
from .tables import CELL_KINDS, HM_NAMES, INPUTS, NUM_NODES, edge_kind

__all__ = ["plot_cells"]

_COLORS = {"down": "#8fb8de", "up": "#9ed89e", "normal": "#f6c28b"}
_TITLES = {"down": "(a) downward cell (DC)", "up": "(b) upward cell (UC)"}
_NODE_X0, _NODE_DX, _HM_W, _HM_H = 3.0, 2.7, 1.5, 0.62


def _box(ax: Any, x: float, y: float, w: float, h: float, text: str, color: str, size: float = 7.5) -> None:
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(FancyBboxPatch((x, y - h / 2), w, h, boxstyle="round,pad=0.03", fc=color, ec="0.25", lw=0.8,
                                zorder=3))
    ax.text(x + w / 2, y, text, ha="center", va="center", fontsize=size, zorder=4)


def _arrow(ax: Any, start: tuple[float, float], end: tuple[float, float], rad: float = 0.0) -> None:
    # behind the boxes (zorder 1), so that crossing wires do not hide the op names
    ax.annotate("", xy=end, xytext=start, zorder=1, arrowprops=dict(arrowstyle="->", lw=0.8, color="0.45", shrinkA=0,
                                                                    shrinkB=2, connectionstyle=f"arc3,rad={rad}"))


def _panel(ax: Any, genotype: Genotype, cell: str) -> None:
    from matplotlib.patches import Rectangle

    ax.set_xlim(-0.2, _NODE_X0 + _NODE_DX * NUM_NODES + 1.6)
    ax.set_ylim(0.0, 4.1)
    ax.axis("off")
    ax.set_title(_TITLES[cell], fontsize=10)
    out: dict[str, tuple[float, float]] = {}  # source -> the point its arrows start from
    for name, y, pre in (("x0", 3.4, "pre0\n(s=2)"), ("x1", 0.7, "pre1")):
        _box(ax, 0.0, y, 0.8, 0.55, name.upper(), "0.9", 9)
        _box(ax, 1.2, y, 0.9, 0.62, pre, "0.8", 7)
        _arrow(ax, (0.85, y), (1.17, y))
        out[name] = (2.15, y)
    plus: list[tuple[float, float]] = []
    for i, node in enumerate(genotype.cells[cell]):
        x = _NODE_X0 + _NODE_DX * i
        ax.add_patch(Rectangle((x - 0.2, 1.05), _HM_W + 0.95, 1.9, fill=False, ec="red", ls="--", lw=0.9))
        ax.text(x - 0.15, 2.82, f"Node {i}", color="red", fontsize=7, va="center")
        px, py = x + _HM_W + 0.45, 2.0
        for (source, op), y in zip(node.items(), (2.4, 1.5)):
            kind = edge_kind(cell, source)
            _box(ax, x, y, _HM_W, _HM_H * 0.8, f"{op}\n[{HM_NAMES[kind]} <- {source}]", _COLORS[kind], 6.5)
            sx, sy = out[source]
            _arrow(ax, (sx, sy), (x - 0.02, y), rad=0.0 if source in INPUTS else -0.35)
            _arrow(ax, (x + _HM_W + 0.03, y), (px - 0.2, py))
        ax.plot([px], [py], "o", ms=15, mfc="#4a90d9", mec="0.2", zorder=5)  # a marker stays round
        ax.text(px, py, "+", ha="center", va="center", fontsize=11, color="white", weight="bold", zorder=6)
        out[f"node{i}"] = (px, py - 0.22)
        plus.append((px, py))
    cx = _NODE_X0 + _NODE_DX * NUM_NODES + 0.1
    _box(ax, cx, 2.0, 0.55, 0.6, "C", "#f2d94e", 10)
    for i, (px, py) in enumerate(plus):
        _arrow(ax, (px + 0.2, py), (cx - 0.02, 2.0), rad=-0.18 * (NUM_NODES - 1 - i))
    _arrow(ax, (cx + 0.57, 2.0), (cx + 1.1, 2.0))
    ax.text(cx + 1.15, 2.0, "out", va="center", fontsize=8)


def plot_cells(genotype: Genotype | str | os.PathLike | dict, path: str | os.PathLike, title: str | None = None,
               dpi: int = 110) -> Path:
    """Draw the genotype's downward and upward cells (Fig. 6) and write them as a PNG at ``path`` (atomically).

    Args:
        genotype: a :class:`.genotype.Genotype`, its dict, or the path of its JSON file.
        path: destination ``.png``.
        title: figure title; default ``"NAS-3D-U-Net cells"`` with the genotype's digest.
        dpi: resolution.
    """
    from matplotlib.figure import Figure

    geno = Genotype.resolve(genotype)
    fig = Figure(figsize=(11, 5.6))
    for k, cell in enumerate(CELL_KINDS):
        _panel(fig.add_subplot(2, 1, k + 1), geno, cell)
    fig.suptitle(title or f"NAS-3D-U-Net cells (genotype {geno.digest()})", fontsize=10)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.9, bottom=0.01, hspace=0.15)
    return save_figure(fig, path, dpi)
