"""Per-region Dice, sensitivity, specificity and HD95 (Table 4) from binary region masks."""

from __future__ import annotations

import json
import math

import pytest
import torch

from vnas_monai.evaluation import REGION_METRICS, label_region_metrics, region_case_metrics, summarize_regions


def _cube(lo: tuple[int, int, int], size: int = 4, shape=(10, 10, 10)) -> torch.Tensor:
    m = torch.zeros(shape)
    m[lo[0]:lo[0] + size, lo[1]:lo[1] + size, lo[2]:lo[2] + size] = 1
    return m


def test_hand_made_masks():
    label = torch.stack([_cube((3, 3, 3)), _cube((3, 3, 3)), torch.zeros(10, 10, 10)])
    pred = torch.stack([_cube((4, 3, 3)), _cube((3, 3, 3)), _cube((0, 0, 0), size=2)])
    out = region_case_metrics(pred, label, ["ET", "TC", "WT"])
    assert list(out) == ["ET", "TC", "WT"] and all(list(v) == list(REGION_METRICS) for v in out.values())
    # ET: 64 true voxels, prediction shifted by one voxel along x: overlap 48, 16 false positives
    et = out["ET"]
    assert et["dice"] == pytest.approx(2 * 48 / (64 + 64))
    assert et["sensitivity"] == pytest.approx(48 / 64)
    assert et["specificity"] == pytest.approx((1000 - 64 - 16) / (1000 - 64))
    assert et["hd95_mm"] == pytest.approx(1.0)  # a 16-voxel face of the 56 surface voxels is 1 voxel off
    assert out["TC"] == {"dice": 1.0, "sensitivity": 1.0, "specificity": 1.0, "hd95_mm": 0.0}
    # WT: no ground truth, 8 predicted voxels: Dice 0, HD95 the volume's diagonal, sensitivity undefined
    wt = out["WT"]
    assert wt["dice"] == 0.0 and wt["sensitivity"] is None
    assert wt["hd95_mm"] == pytest.approx(math.sqrt(300.0))
    assert wt["specificity"] == pytest.approx(992 / 1000)
    json.dumps(out, allow_nan=False)  # plain JSON


def test_spacing_and_empty_regions():
    label = torch.stack([_cube((3, 3, 3)), torch.zeros(10, 10, 10)])
    pred = torch.stack([_cube((4, 3, 3)), torch.zeros(10, 10, 10)])
    out = region_case_metrics(pred, label, ["a", "b"], spacing=(2.0, 1.0, 1.0))
    assert out["a"]["hd95_mm"] == pytest.approx(2.0)
    assert out["b"] == {"dice": 1.0, "sensitivity": None, "specificity": 1.0, "hd95_mm": 0.0}  # BraTS: both empty
    missed = region_case_metrics(torch.zeros(1, 10, 10, 10), label[:1], ["a"], spacing=(2.0, 1.0, 1.0))["a"]
    assert missed["dice"] == 0.0 and missed["sensitivity"] == 0.0
    assert missed["hd95_mm"] == pytest.approx(math.sqrt(400.0 + 100.0 + 100.0))


def test_label_maps_and_summary():
    label = torch.zeros(1, 10, 10, 10, dtype=torch.long)
    label[0, 2:8, 2:8, 2:8] = 2  # edema
    label[0, 3:7, 3:7, 3:7] = 1  # necrosis
    label[0, 4:6, 4:6, 4:6] = 4  # enhancing
    same = label_region_metrics(label, label, "brats")
    assert {r: m["dice"] for r, m in same.items()} == {"ET": 1.0, "TC": 1.0, "WT": 1.0}
    no_et = label.clone()
    no_et[no_et == 4] = 1
    other = label_region_metrics(no_et, label, "brats")
    assert other["ET"]["dice"] == 0.0 and other["TC"]["dice"] == 1.0 and other["WT"]["dice"] == 1.0
    summary = summarize_regions([{"case": "a", **same}, {"case": "b", **other}])
    assert summary["ET"]["dice"]["mean"] == pytest.approx(0.5) and summary["ET"]["dice"]["n"] == 2
    assert summary["TC"]["sensitivity"]["median"] == pytest.approx(1.0)
    json.dumps(summary, allow_nan=False)


def test_bad_input():
    with pytest.raises(ValueError, match=r"prediction shape \(2, 4, 4, 4\) differs from label shape \(2, 4, 4, 5\)"):
        region_case_metrics(torch.zeros(2, 4, 4, 4), torch.zeros(2, 4, 4, 5), ["a", "b"])
    with pytest.raises(ValueError, match=r"2 region channels but 3 region names"):
        region_case_metrics(torch.zeros(2, 4, 4, 4), torch.zeros(2, 4, 4, 4), ["ET", "TC", "WT"])
    with pytest.raises(ValueError, match=r"prediction: label values \[3\] are not in the 'brats' layout"):
        label_region_metrics(torch.full((1, 2, 2, 2), 3), torch.zeros(1, 2, 2, 2), "brats")
