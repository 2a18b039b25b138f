"""Fingerprint (MONAI DataAnalyzer), plan, plan file and overrides, and the ``plan`` command, on small synthetic data
and on the real hippocampus and CT of ``../shared/data``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.plan.synthetic import make_dataset
from vnas_monai.plan import check_plan, compute_plan, load_plan, plan_for_work_dir, plan_overrides, write_plan


@pytest.fixture(scope="module")
def mri_dir(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("plan") / "mri", spacing=(1.0, 1.5, 1.0))


def test_plan_of_synthetic_mri(mri_dir):
    plan = compute_plan(mri_dir, divisible_by=8)
    assert plan["modality"] == "MRI" and plan["class_names"] == ["background", "front", "back"]
    assert plan["spacing"] == [1.0, 1.5, 1.0]
    assert plan["median_shape"] == [20, 28, 12]
    assert plan["patch_size"] == [24, 32, 16]
    assert plan["normalisation"]["mode"] == "zscore"
    assert plan["flip_axes"] == [0, 2]  # the classes follow each other along axis 1
    assert plan["fingerprint"]["num_analysed"] == 6
    assert plan["batch_size"] * plan["num_samples"] == plan["patches_per_step"] >= 2


def test_plan_subset_is_seeded(mri_dir):
    a = compute_plan(mri_dir, max_cases=3, seed=1)["fingerprint"]
    b = compute_plan(mri_dir, max_cases=3, seed=1)["fingerprint"]
    assert a["num_analysed"] == 3 and a["num_cases"] == 6 and a["subset_seed"] == 1
    assert a == b


def test_plan_file_round_trip_and_overrides(mri_dir, tmp_path):
    plan = compute_plan(mri_dir)
    path = write_plan(plan, tmp_path / "plan.json")
    assert load_plan(path) == json.loads(json.dumps(plan))
    o = plan_overrides(plan)
    assert o["roi_size"] == plan["patch_size"] and o["spacing"] == plan["spacing"]
    assert o["intensity_clip"] is None and o["normalisation"] == "zscore"
    assert o["flip_axes"] == [0, 2] and o["num_samples"] == plan["num_samples"]


def test_bad_plan_file_names_file_and_key(mri_dir, tmp_path):
    plan = compute_plan(mri_dir)
    del plan["flip_axes"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(plan))
    with pytest.raises(ValueError, match=r"bad\.json.*'flip_axes'"):
        load_plan(bad)
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=r"bad\.json is not valid JSON"):
        load_plan(bad)
    with pytest.raises(ValueError, match="'patch_size' must be 3 positive"):
        check_plan({**compute_plan(mri_dir), "patch_size": [32, 32]}, "x")


def test_plan_for_work_dir_is_computed_once(mri_dir, tmp_path):
    from vnas_monai.data import load_datalist

    cases = load_datalist(mri_dir)
    first = plan_for_work_dir(tmp_path, mri_dir, cases)
    (tmp_path / "plan.json").write_text(json.dumps({**first, "batch_size": 7}))
    assert plan_for_work_dir(tmp_path, mri_dir, cases)["batch_size"] == 7  # read, not recomputed


def test_plan_command(mri_dir, tmp_path, capsys):
    from vnas_monai.cli import main

    out = tmp_path / "p.json"
    main(["plan", "--dataset_dir", str(mri_dir), "--output", str(out), "--divisible_by", "4"])
    plan = load_plan(out)
    assert plan["divisible_by"] == 4 and plan["patch_size"] == [20, 28, 12]


def test_plan_of_real_hippocampus(hippocampus_dir):
    plan = compute_plan(hippocampus_dir, max_cases=40)
    assert plan["modality"] == "MRI" and plan["class_names"][1:] == ["Anterior", "Posterior"]
    assert plan["spacing"] == [1.0, 1.0, 1.0]
    assert plan["normalisation"]["mode"] == "zscore"
    # Anterior and Posterior follow each other along axes 1 and 2; they overlap left-right
    assert plan["flip_axes"] == [0]
    assert all(p % 16 == 0 and abs(p - m) <= 8 for p, m in zip(plan["patch_size"], plan["median_shape"]))


@pytest.fixture(scope="module")
def kidneys_ct(tmp_path_factory, totalseg_dir):
    """3 cases linking the real CT, labelled right kidney (1) and left kidney (2) (TotalSegmentator 2 and 3)."""
    import nibabel as nib

    root = tmp_path_factory.mktemp("kidneys")
    (root / "imagesTr").mkdir()
    (root / "labelsTr").mkdir()
    seg_img = nib.load(str(totalseg_dir / "example_seg.nii.gz"))
    seg = np.asarray(seg_img.dataobj)
    label = np.where(seg == 2, 1, np.where(seg == 3, 2, 0)).astype(np.uint8)
    nib.save(nib.Nifti1Image(label, seg_img.affine), str(root / "kidneys.nii.gz"))
    training = []
    for i in range(3):
        (root / "imagesTr" / f"ct_{i}.nii.gz").symlink_to(totalseg_dir / "example_ct_sm.nii.gz")
        (root / "labelsTr" / f"ct_{i}.nii.gz").symlink_to(root / "kidneys.nii.gz")
        training.append({"image": f"./imagesTr/ct_{i}.nii.gz", "label": f"./labelsTr/ct_{i}.nii.gz"})
    meta = {"modality": {"0": "CT"}, "labels": {"0": "background", "1": "kidney_right", "2": "kidney_left"},
            "training": training}
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def test_plan_of_real_ct(kidneys_ct, totalseg_dir):
    import nibabel as nib

    plan = compute_plan(kidneys_ct, divisible_by=16)
    norm = plan["normalisation"]
    assert plan["modality"] == "CT" and norm["mode"] == "ct"
    ct = np.asarray(nib.load(str(totalseg_dir / "example_ct_sm.nii.gz")).dataobj)
    kidneys = ct[np.asarray(nib.load(str(kidneys_ct / "kidneys.nii.gz")).dataobj) > 0]
    lo, hi = norm["clip"]  # foreground (kidney) percentiles, not the [-1000, 1000+] HU of the whole volume
    assert [lo, hi] == pytest.approx(np.percentile(kidneys, [0.5, 99.5]).tolist(), abs=1.0)
    assert norm["mean"] == pytest.approx(kidneys.mean(), abs=0.5) and norm["std"] == pytest.approx(kidneys.std(), 0.02)
    assert plan["spacing"] == [3.0, 3.0, 3.0]
    assert plan["median_shape"] == [122, 101, 30] and plan["patch_size"] == [128, 96, 32]
    assert 0 not in plan["flip_axes"]  # left and right kidneys
    assert plan_overrides(plan)["intensity_clip"] == [lo, hi]


def test_resolve_plan_for_bundles(mri_dir, tmp_path):
    from vnas_monai.data import load_datalist
    from vnas_monai.plan import plan_value, resolve_plan

    cases = load_datalist(mri_dir)
    assert resolve_plan(None, tmp_path, mri_dir, cases) is None
    assert plan_value(None, "roi_size", [96, 96, 64]) == [96, 96, 64]
    auto = resolve_plan("auto", tmp_path, mri_dir, cases, divisible_by=4)
    assert (tmp_path / "plan.json").is_file() and auto["divisible_by"] == 4
    assert resolve_plan(str(tmp_path / "plan.json"), tmp_path, mri_dir, cases) == auto
    assert plan_value(auto, "roi_size", None) == auto["patch_size"]
    assert plan_value(auto, "flip_axes", None) == [0, 2]
    with pytest.raises(KeyError, match="gives no override 'lr'"):
        plan_value(auto, "lr", 0.1)
    with pytest.raises(ValueError, match="plan must be null, 'auto'"):
        resolve_plan(3, tmp_path, mri_dir, cases)


def test_unreadable_label_is_named(tmp_path):
    root = make_dataset(tmp_path / "bad", num_cases=3)
    (root / "labelsTr" / "case_001.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(ValueError, match=r"label .*labelsTr/case_001\.nii\.gz cannot be read"):
        compute_plan(root)


def test_dataset_json_labels_with_gaps_are_refused(tmp_path):
    root = make_dataset(tmp_path / "gaps", num_cases=2)
    meta = json.loads((root / "dataset.json").read_text())
    meta["labels"] = {"0": "background", "2": "b"}
    (root / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"dataset\.json: 'labels' must be 0 \.\. n-1"):
        compute_plan(root)


def test_benchmark_pipeline_runs_from_the_ct_plan(kidneys_ct, tmp_path):
    """The second configuration of issue 14: the real CT's plan (CT clipping + foreground z-score, 3 mm, its own
    patch) drives the preprocessing, training and evaluation of a baseline and of V-NAS, end to end."""
    from vnas_monai.benchmark import benchmark

    benchmark(dataset_dir=str(kidneys_ct), budget_min=0.03, methods="unet,vnas_random1", work_dir=str(tmp_path),
              num_folds=3)
    plan = load_plan(tmp_path / "plan.json")
    assert plan["normalisation"]["mode"] == "ct" and plan["spacing"] == [3.0, 3.0, 3.0]
    for method, patch in (("unet", [128, 96, 32]), ("vnas_random1", [128, 96, 32])):
        result = json.loads((tmp_path / method / "result.json").read_text())
        assert result["meta"]["roi_size"] == patch and result["meta"]["steps"] >= 1
        assert len(result["records"]) == 1 and len(result["records"][0]["dice"]) == 2  # right and left kidney
    rows = json.loads((tmp_path / "benchmark.json").read_text())["rows"]
    assert {r["method"] for r in rows} == {"unet", "vnas_random1"}
