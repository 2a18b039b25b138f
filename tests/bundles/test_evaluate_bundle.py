"""End-to-end runs of ``bundles/*/evaluate.json`` through MONAI's ``ConfigWorkflow`` on real data: per-case Dice,
HD95 and surface Dice per class (metrics.csv), the paper's summary (summary.json, summary.md) and overlays."""

from __future__ import annotations

import csv
import json
import math
import re

import numpy as np
import pytest
from monai.transforms import LoadImage

from tests.bundles.test_search_bundle import error_chain
from tests.bundles.test_train_bundle import random_checkpoint, run_stage
from vnas_monai.bundle import case_name


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_evaluate_matches_inference_on_real_ct(tmp_path, pancreas_ct_msd):
    ckpt = random_checkpoint(tmp_path / "fold0" / "train" / "model.pt")  # the default checkpoint location
    common = dict(dataset_dir=str(pancreas_ct_msd), num_folds=3, overlap=0.0)
    run_stage("evaluate", tmp_path, **common)
    out = tmp_path / "fold0" / "eval"
    test_cases = json.loads((tmp_path / "folds.json").read_text())["folds"][0]
    rows = read_csv(out / "metrics.csv")
    assert [(r["case"], r["class"]) for r in rows] == [(case_name(c["image"]), "pancreas") for c in test_cases]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_cases"] == len(test_cases) and summary["settings"]["checkpoint"] == str(ckpt)
    dice = [float(r["dice"]) for r in rows]
    assert summary["classes"]["pancreas"]["dice"]["mean"] == pytest.approx(np.mean(dice))
    assert "| pancreas | Dice (DSC) |" in (out / "summary.md").read_text()
    assert sorted(p.name for p in (out / "overlays").iterdir()) == sorted(f"{r['case']}.png" for r in rows)

    # the same network through the inference bundle, scored here on the original grid with numpy
    run_stage("inference", tmp_path, **common)
    for row, case in zip(rows, test_cases):
        name = case_name(case["image"])
        seg = LoadImage(image_only=True)(str(tmp_path / "fold0" / "infer" / name / f"{name}_seg.nii.gz")).numpy() > 0
        ref = LoadImage(image_only=True)(case["label"]).numpy() > 0
        expected = 2 * (seg & ref).sum() / (seg.sum() + ref.sum())
        assert float(row["dice"]) == pytest.approx(expected, abs=1e-6)
        assert math.isfinite(float(row["hd95_mm"])) or not seg.any()


@pytest.mark.slow
def test_evaluate_per_class_on_real_mri(tmp_path, hippocampus_dir):
    """The MSD pancreas bundle's 3-class evaluation (classes 1 and 2 reported separately), on real 3-class MRI."""
    random_checkpoint(tmp_path / "fold0" / "train" / "model.pt", arch="msd_pancreas", num_classes=3)
    run_stage("evaluate", tmp_path, bundle="vnas_msd_pancreas", dataset_dir=str(hippocampus_dir), max_cases=4,
              num_folds=2, intensity_clip=None, num_overlays=1)
    out = tmp_path / "fold0" / "eval"
    rows = read_csv(out / "metrics.csv")
    assert len(rows) == 2 * 2 and [r["class"] for r in rows[:2]] == ["pancreas", "tumour"]
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["classes"]) == {"pancreas", "tumour"}
    for stats in summary["classes"].values():
        assert set(stats) == {"dice", "hd95_mm", "surface_dice"}
        assert set(stats["dice"]) >= {"mean", "std", "max", "min", "median", "n"}
    assert len(list((out / "overlays").iterdir())) == 1


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(num_folds=1), "S_test is empty"),
        (dict(checkpoint="/no/such/model.pt", arch="nih"), "/no/such/model.pt"),
        (dict(eval_split="validation"), "validation"),
    ],
)
def test_evaluate_bad_inputs_are_named(tmp_path, pancreas_ct_msd, overrides, match):
    ckpt = random_checkpoint(tmp_path / "model.pt")
    with pytest.raises(Exception) as info:
        config = {"dataset_dir": str(pancreas_ct_msd), "num_folds": 3, "checkpoint": str(ckpt)}
        run_stage("evaluate", tmp_path, **{**config, **overrides})
    assert re.search(match, error_chain(info.value)), error_chain(info.value)
    assert not (tmp_path / "fold0" / "eval" / "metrics.csv").exists()
