"""The overlay PNGs (``vnas_monai.evaluation.overlays``)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from matplotlib.image import imread

from vnas_monai.evaluation import OverlayWriter, save_overlay


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
