"""The V-NAS architecture figure: one box per searchable cell (stem, 16 encoder cells by ResNet-50 stage, 5 decoder
blocks), coloured by the chosen candidate (2D blue, 3D orange, P3D green, as in the search's probability plot), with
the kernels of the choice and, when the architecture carries them, the choice probabilities (``Architecture.plot``).
"""

from __future__ import annotations

import os
from pathlib import Path

from vnas_monai.io import save_figure

from .encoding import ENCODER_GROUPS, NUM_DECODER_BLOCKS, Architecture

__all__ = ["plot_architecture"]

_LABELS = ("2D", "3D", "P3D")
_COLORS = ("tab:blue", "tab:orange", "tab:green")
_ENCODER_KERNELS = ("3x3x1\n1x1x1", "3x3x3\n1x1x1", "3x3x1\n1x1x3")
_DECODER_KERNELS = ("3x3x1\n3x3x1", "3x3x3\n3x3x3", "3x3x1\n1x1x3")


def plot_architecture(
    architecture: Architecture | str | os.PathLike, path: str | os.PathLike, title: str | None = None, dpi: int = 100
) -> Path:
    """Draw a V-NAS architecture as a row of cells coloured by 2D / 3D / P3D and write it as a PNG.

    Args:
        architecture: an ``Architecture``, a preset name or an ``arch.json`` path.
        path: destination ``.png``.
        title: figure title; default: the paper's code notation.
        dpi: resolution.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyBboxPatch, Patch

    arch = Architecture.resolve(architecture)
    enc, dec = arch.to_paper()
    probs = arch.probabilities
    cells: list[tuple[str, int, str, float | None]] = []  # (label, code, kernels, probability)
    i = 0
    for n in ENCODER_GROUPS:
        for _ in range(n):
            p = probs["encoder"][i][arch.encoder[i]] if probs else None
            cells.append((f"E{i + 1}", arch.encoder[i], _ENCODER_KERNELS[arch.encoder[i]], p))
            i += 1
        cells.append(("", -1, "", None))  # gap between stages
    for b in range(NUM_DECODER_BLOCKS):
        p = probs["decoder"][b][arch.decoder[b]] if probs else None
        cells.append((f"D{b + 1}", arch.decoder[b], _DECODER_KERNELS[arch.decoder[b]], p))

    width = len(cells) + 2.5
    fig = Figure(figsize=(width * 0.62, 2.6))
    ax = fig.add_axes((0.01, 0.05, 0.98, 0.72))
    ax.set_xlim(-1.6, len(cells) + 0.2)
    ax.set_ylim(-0.9, 1.2)
    ax.axis("off")
    ax.add_patch(FancyBboxPatch((-1.5, 0.0), 1.2, 1.0, boxstyle="round,pad=0.02", fc="0.85", ec="0.3"))
    ax.text(-0.9, 0.5, "stem\n7x7x1\n1x1x3", ha="center", va="center", fontsize=7)
    for x, (label, code, kernels, p) in enumerate(cells):
        if code < 0:
            continue
        ax.add_patch(FancyBboxPatch((x, 0.0), 0.9, 1.0, boxstyle="round,pad=0.02", fc=_COLORS[code], ec="0.2",
                                    alpha=0.85))
        ax.text(x + 0.45, 0.62, _LABELS[code], ha="center", va="center", fontsize=8, weight="bold", color="white")
        ax.text(x + 0.45, 0.25, kernels, ha="center", va="center", fontsize=5.5, color="white")
        ax.text(x + 0.45, 1.08, label, ha="center", va="bottom", fontsize=7)
        if p is not None:
            ax.text(x + 0.45, -0.12, f"{p:.2f}", ha="center", va="top", fontsize=6)
    split = len(cells) - NUM_DECODER_BLOCKS - 1
    ax.text(split / 2, -0.55, "encoder (ResNet-50 bottlenecks, stages 3-4-6-3)", ha="center", fontsize=8)
    ax.text(split + 1 + NUM_DECODER_BLOCKS / 2, -0.55, "decoder dense blocks", ha="center", fontsize=8)
    fig.suptitle(title or f"V-NAS architecture: encoder [{enc}]  decoder [{dec}]", fontsize=9, y=0.97)
    handles = [Patch(color=c, label=f"{lab} ({k})") for c, lab, k in zip(_COLORS, _LABELS, range(3))]
    fig.legend(handles=handles, loc="upper right", fontsize=7, ncol=3, frameon=False, bbox_to_anchor=(0.99, 0.9))
    return save_figure(fig, path, dpi)
