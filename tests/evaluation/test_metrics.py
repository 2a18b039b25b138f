"""Per-case Dice / HD95 / surface Dice and the paper's summary tables (``vnas_monai.evaluation``)."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch

from vnas_monai.evaluation import case_metrics, summarize, write_reports


def cube(shape=(20, 20, 12), lo=(5, 5, 3), hi=(10, 10, 8), value=1) -> torch.Tensor:
    x = torch.zeros(1, *shape)
    x[0, lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = value
    return x


def test_case_metrics_known_values():
    label = cube()
    shifted = cube(lo=(6, 5, 3), hi=(11, 10, 8))  # shifted one voxel along x: overlap 4/5
    m = case_metrics(shifted, label, num_classes=2, spacing=(2.0, 1.0, 1.0), tolerance_mm=0.5)
    assert m["dice"] == [pytest.approx(0.8)]
    assert m["hd95_mm"] == [pytest.approx(2.0)]  # one voxel of 2 mm
    assert 0 < m["surface_dice"][0] < 1  # the shifted faces are 2 mm off, beyond the 0.5 mm tolerance
    same = case_metrics(label, label, 2, spacing=(1.0, 1.0, 1.0))
    assert same == {"dice": [1.0], "hd95_mm": [0.0], "surface_dice": [1.0]}


def test_case_metrics_per_class_and_empty_classes():
    label = cube() + cube(lo=(12, 12, 3), hi=(16, 16, 8), value=2)
    pred = cube()  # class 2 missed entirely
    m = case_metrics(pred, label, num_classes=3)
    assert m["dice"][0] == pytest.approx(1.0) and m["dice"][1] == 0.0
    assert m["hd95_mm"][1] == math.inf
    absent = case_metrics(pred, cube(), num_classes=3)  # class 2 in neither map
    assert math.isnan(absent["dice"][1]) and math.isnan(absent["hd95_mm"][1])
    with pytest.raises(ValueError, match="differs"):
        case_metrics(cube(shape=(20, 20, 10), hi=(10, 10, 6)), label, 3)


def test_summary_and_reports(tmp_path):
    records = [
        {"case": "a", "dice": [0.8, 0.2], "hd95_mm": [3.0, math.inf], "surface_dice": [0.9, 0.1]},
        {"case": "b", "dice": [0.6, math.nan], "hd95_mm": [5.0, math.nan], "surface_dice": [0.7, math.nan]},
        {"case": "c", "dice": [0.7, 0.4], "hd95_mm": [4.0, 9.0], "surface_dice": [0.8, 0.3]},
    ]
    summary = write_reports(records, tmp_path, ["pancreas", "tumour"], settings={"fold": 0}, title="T")
    d = summary["classes"]["pancreas"]["dice"]
    assert d["mean"] == pytest.approx(0.7) and d["std"] == pytest.approx(np.std([0.8, 0.6, 0.7]))
    assert (d["max"], d["min"], d["median"], d["n"]) == (0.8, 0.6, pytest.approx(0.7), 3)
    t = summary["classes"]["tumour"]
    assert t["dice"]["n"] == 2 and t["dice"]["n_undefined"] == 1 and t["dice"]["mean"] == pytest.approx(0.3)
    assert t["hd95_mm"]["n"] == 1 and t["hd95_mm"]["n_undefined"] == 2
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert len(rows) == 6 and rows[1] == {"case": "a", "class": "tumour", "dice": "0.2", "hd95_mm": "inf",
                                          "surface_dice": "0.1"}
    md = (tmp_path / "summary.md").read_text()
    assert md.startswith("# T") and "| pancreas | Dice (DSC) | 70.00 ± 8.16 | 80.00 | 60.00 | 70.00 | 3 |" in md


def test_malformed_records_are_refused():
    with pytest.raises(ValueError, match="one value per class"):
        summarize([{"case": "a", "dice": [0.5], "hd95_mm": [1.0], "surface_dice": [1.0]}], ["pancreas", "tumour"])
