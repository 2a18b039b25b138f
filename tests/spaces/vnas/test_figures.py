"""The V-NAS architecture figure (``vnas_monai.spaces.vnas.figures``)."""

from __future__ import annotations

import numpy as np
from matplotlib.colors import to_rgb
from matplotlib.image import imread

from vnas_monai.spaces.vnas.encoding import Architecture
from vnas_monai.spaces.vnas.figures import _COLORS, plot_architecture


def colour_fraction(png, colour: str) -> float:
    """Fraction of the pixels in ``colour`` as the cells show it (alpha 0.85 on white)."""
    rgb = imread(str(png))[..., :3]
    target = 0.85 * np.array(to_rgb(colour)) + 0.15
    return float((np.abs(rgb - target).max(-1) < 0.08).mean())


def test_architecture_png_is_coloured_by_candidate(tmp_path):
    plot_architecture(Architecture.uniform("2d"), tmp_path / "2d.png")
    plot_architecture("nih", tmp_path / "nih.png")
    two_d, three_d, p3d = (colour_fraction(tmp_path / "2d.png", c) for c in _COLORS)
    assert two_d > 0.1 and three_d < 0.001 and p3d < 0.001
    nih = [colour_fraction(tmp_path / "nih.png", c) for c in _COLORS]
    assert nih[1] > 0.01 and nih[2] > 0.02 and nih[0] > nih[2]  # 2D dominates, then P3D, then 3D (2 cells)
