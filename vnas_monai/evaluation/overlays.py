"""Figures people look at: predictions overlaid on images (a space draws its own architectures: ``encoding.plot``).

* :func:`save_overlay` / :class:`OverlayWriter`: an axial slice (the one with most foreground) of the image with the
  ground-truth contour (green) and the prediction (red), one PNG per case, for the first few cases of an evaluation
  or an inference run.

Matplotlib's Agg canvas is used directly (no pyplot state, no display); PNGs are written atomically.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vnas_monai.io import save_figure

__all__ = ["OverlayWriter", "save_overlay"]

logger = logging.getLogger(__name__)


def _volume(x: Any, name: str) -> np.ndarray:
    if x is None:
        return None
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if a.ndim == 4:
        a = a[0] if a.shape[0] == 1 else a.argmax(0)
    if a.ndim != 3:
        raise ValueError(f"{name} must be a 3D volume (optionally with a channel axis), got shape {a.shape}.")
    return a


def save_overlay(
    image: Any, pred: Any, path: str | os.PathLike, label: Any = None, title: str | None = None, dpi: int = 100
) -> Path:
    """Write a PNG of the axial slice (last axis) with the most foreground: image in grey, ground-truth contour in
    green (when ``label`` is given) and prediction in red, one panel per side for readability.

    Args:
        image: (H, W, D) or (1, H, W, D) intensities.
        pred: label map of the same grid (or class scores, channel first).
        path: destination ``.png``.
        label: optional ground-truth label map.
        title: figure title.
        dpi: resolution.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    img, seg, ref = _volume(image, "image"), _volume(pred, "pred"), _volume(label, "label")
    for name, v in (("pred", seg), ("label", ref)):
        if v is not None and v.shape != img.shape:
            raise ValueError(f"{name} shape {v.shape} differs from image shape {img.shape}.")
    fg = (ref if ref is not None else seg) > 0
    z = int(fg.sum(axis=(0, 1)).argmax()) if fg.any() else img.shape[2] // 2
    lo, hi = np.percentile(img[..., z], (1, 99)) if img[..., z].size else (0, 1)
    sl = np.clip((img[..., z] - lo) / max(hi - lo, 1e-6), 0, 1).T  # x to the right, y down (radiological view)
    panels = [("prediction", seg)] if ref is None else [("ground truth", ref), ("prediction", seg)]
    fig = Figure(figsize=(3.6 * len(panels), 3.9))
    for k, (name, m) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), k + 1)
        ax.imshow(sl, cmap="gray", origin="lower")
        overlay = np.ma.masked_where(m[..., z].T == 0, m[..., z].T)
        ax.imshow(overlay, cmap="autumn" if name == "prediction" else "summer", alpha=0.45, origin="lower",
                  interpolation="nearest")
        if ref is not None and name == "prediction" and ref[..., z].any():
            ax.contour(ref[..., z].T > 0, levels=[0.5], colors=["lime"], linewidths=0.8, origin="lower")
        ax.set_title(name, fontsize=8)
        ax.axis("off")
    if ref is not None:
        fig.legend(handles=[Line2D([0], [0], color="lime", label="ground-truth contour")], loc="lower center",
                   fontsize=7, frameon=False)
    fig.suptitle(title or f"slice {z}", fontsize=9)
    return save_figure(fig, path, dpi)


class OverlayWriter:
    """Ignite handler: overlay PNGs of the first ``num_cases`` cases an evaluator sees, as
    ``<output_dir>/<case>.png`` (see :func:`save_overlay`). Items need ``image`` and ``pred`` (and ``label`` when
    present) on the same grid; a failure to draw is logged, not raised (the segmentations are the product)."""

    def __init__(
        self, output_dir: str | os.PathLike, num_cases: int = 3, image_key: str = "image", pred_key: str = "pred",
        label_key: str = "label",
    ) -> None:
        if int(num_cases) < 0:
            raise ValueError(f"num_cases must be >= 0, got {num_cases}.")
        self.output_dir = Path(output_dir)
        self.num_cases = int(num_cases)
        self.image_key, self.pred_key, self.label_key = image_key, pred_key, label_key
        self.written: list[Path] = []
        self.seen = 0

    def reset(self, engine: Any = None) -> None:
        self.written, self.seen = [], 0

    def attach(self, engine: Any) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.STARTED, self.reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Any) -> None:
        from vnas_monai.bundle.datalists import case_name

        output = engine.state.output
        for item in output if isinstance(output, (list, tuple)) else [output]:
            if self.seen >= self.num_cases:
                return
            self.seen += 1
            image = item[self.image_key]
            label = item.get(self.label_key)
            label = label if isinstance(label, torch.Tensor) else None
            source = getattr(image, "meta", {}).get("filename_or_obj", "")
            name = case_name(source) if source else f"case_{self.seen:04d}"
            try:
                self.written.append(save_overlay(image, item[self.pred_key], self.output_dir / f"{name}.png", label,
                                                 title=name))
            except Exception as e:
                logger.warning("could not draw the overlay of %s: %s", name, e)
