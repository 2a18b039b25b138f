"""The architecture figure and the overlay PNGs (``vnas_monai.bundle.figures``)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgb
from matplotlib.image import imread

from vnas_monai.bundle import OverlayWriter, save_overlay
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


def test_overlay_png_and_errors(tmp_path):
    image = torch.randn(1, 24, 24, 8)
    label = torch.zeros(1, 24, 24, 8)
    label[0, 5:12, 5:12, 3:5] = 1
    path = save_overlay(image, label, tmp_path / "case.png", label=label)
    assert imread(str(path)).shape[0] > 100
    with pytest.raises(ValueError, match="shape"):
        save_overlay(image, label[:, :20], tmp_path / "bad.png")


def test_overlay_writer_stops_after_num_cases(tmp_path):
    writer = OverlayWriter(tmp_path, num_cases=2)
    image = torch.randn(1, 16, 16, 4)
    items = []
    for i in range(3):
        img = image.clone()
        from monai.data import MetaTensor

        img = MetaTensor(img, meta={"filename_or_obj": f"/d/case_{i}.nii.gz"})
        items.append({"image": img, "pred": torch.zeros(1, 16, 16, 4)})  # no label: inference-style overlay
    engine = SimpleNamespace(state=SimpleNamespace(output=items))
    writer(engine)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case_0.png", "case_1.png"]
