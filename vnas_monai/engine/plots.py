"""PNG of a search's choice probabilities over the epochs (V-NAS: Zhu et al., 3DV 2019, §3 and Alg. 1).

One band per searchable cell, in the row layout of the space's encoding (:class:`vnas_monai.spaces.RowLayout`; for
V-NAS the 16 encoder cells grouped by ResNet-50 stage, then the 5 decoder blocks), each showing the softmax of its
architecture logits stacked against the epoch. Uses matplotlib's Agg canvas directly (no pyplot, no display).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vnas_monai.io import atomic_write_png
from vnas_monai.spaces.protocol import RowLayout

__all__ = ["UNDECIDED_TOLERANCE", "choice_label", "plot_probability_history"]

_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive")


#: a cell whose probabilities are all within this of uniform (1/3) has not chosen (e.g. before the architecture
#: updates start): labelled "undecided", not with the argmax of a tie
UNDECIDED_TOLERANCE = 0.05


def choice_label(
    probs: Sequence[float], tolerance: float = UNDECIDED_TOLERANCE, labels: Sequence[str] = ("2D", "3D", "P3D")
) -> str:
    """The label of a cell's argmax (V-NAS: ``2D`` / ``3D`` / ``P3D``), ``undecided`` when its probabilities are near
    uniform."""
    values = [float(v) for v in probs]
    if max(abs(v - 1.0 / len(values)) for v in values) < tolerance:
        return "undecided"
    return labels[max(range(len(values)), key=values.__getitem__)]


def plot_probability_history(
    history: Sequence[Mapping[str, Any]], path: str | os.PathLike, layout: RowLayout, title: str | None = None,
    dpi: int = 90, max_points: int = 400,
) -> Path:
    """Plot each cell's candidate probabilities over epochs and write a PNG atomically (temporary file + rename).

    One horizontal band per cell (V-NAS: E1..E16 by stage, then D1..D5), each a stacked area of the candidates'
    probabilities (they sum to 1) against the epoch; the label gives the current argmax and the cell's margin (best
    minus second-best probability). A single axes keeps the
    figure cheap to draw (well under a second), so it can be refreshed every epoch of a long search.

    Args:
        history: entries ``{"epoch": int, <part>: cells x options, ...}`` (as kept by ``ArchitectureLogger``;
            V-NAS: ``"encoder"`` 16 x 3, ``"decoder"`` 5 x 3).
        path: destination ``.png``.
        title: optional figure title.
        dpi: resolution.
        max_points: at most this many epochs are drawn (evenly thinned, first and last kept).
        layout: the space's row layout (``encoding.layout()``).

    Raises:
        ValueError: empty history or rows of the wrong shape.
    """
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    if not history:
        raise ValueError("nothing to plot: the probability history is empty.")
    for h in history:
        for part, names in layout.parts.items():
            if part not in h or len(h[part]) != len(names):
                raise ValueError(f"history entry for epoch {h.get('epoch')} does not have {len(names)} {part} rows.")
    if len(history) > max_points:  # thin long searches: the picture cannot show more, and drawing costs time
        keep = np.unique(np.linspace(0, len(history) - 1, max_points).round().astype(int))
        history = [history[i] for i in keep]
    epochs = np.asarray([float(h["epoch"]) for h in history])
    if len(epochs) == 1:  # a single epoch would be a zero-width area: draw it as a short bar
        epochs = np.asarray([epochs[0] - 0.5, epochs[0] + 0.5])
        history = [history[0], history[0]]
    cells = [(part, i, name) for part, names in layout.parts.items() for i, name in enumerate(names)]
    colors = [_COLORS[k % len(_COLORS)] for k in range(len(layout.options))]
    fig = Figure(figsize=(9, 0.32 * len(cells) + 1.4), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    labels = []
    for row, (part, idx, name) in enumerate(cells):
        probs = np.asarray([[float(v) for v in h[part][idx]] for h in history])  # (epochs, 3)
        probs = probs / np.clip(probs.sum(1, keepdims=True), 1e-12, None)
        base = len(cells) - 1 - row  # E1 on top
        lower = np.full(len(epochs), float(base))
        for k in range(probs.shape[1]):
            upper = lower + 0.9 * probs[:, k]
            ax.fill_between(epochs, lower, upper, color=colors[k], linewidth=0)
            lower = upper
        top = np.sort(probs[-1])[::-1]
        labels.append(f"{name}: {choice_label(probs[-1], labels=layout.options)}, margin {top[0] - top[1]:.2f}")
    ax.set_yticks(np.arange(len(cells))[::-1] + 0.45)
    ax.set_yticklabels(labels, fontsize=7)
    for y in layout.separators:
        if 0 < y < len(cells):
            ax.axhline(len(cells) - y - 0.05, color="black", linewidth=0.8)  # stage / part separators
    ax.set_ylim(-0.1, len(cells))
    ax.set_xlim(epochs[0], epochs[-1])
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    handles = [Patch(color=c, label=lab) for c, lab in zip(colors, layout.options)]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 1.0), ncol=min(len(handles), 6), fontsize=8,
              frameon=False, borderaxespad=-1.6)
    stacked = " / ".join(layout.options)
    ax.set_title(title or f"choice probabilities per cell (stacked: {stacked})", fontsize=10, pad=18)
    ax.set_ylabel(f"cell ({', '.join(layout.parts)}): current choice, margin", fontsize=7)
    fig.subplots_adjust(left=0.27, right=0.98, bottom=0.07, top=0.92)

    # atomic, with the usual file mode (0o666 minus the umask), not mkstemp's private 0o600
    return atomic_write_png(path, fig)
