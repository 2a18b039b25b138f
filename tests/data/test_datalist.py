"""Datalists in the MSD and NIH Pancreas-CT layouts, and header-level pair checks."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from vnas_monai.data import check_pairs, detect_layout, fold_datalists, load_datalist


def shared_data_dir() -> Path:
    """The project's read-only real data: ``$VNAS_SHARED_DATA``, else the repository's sibling ``../shared/data``."""
    env = os.environ.get("VNAS_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


HIPPOCAMPUS = shared_data_dir() / "msd_hippocampus"


def write_nifti(path: Path, shape=(4, 5, 6), dtype=np.uint8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.zeros(shape, dtype=dtype), np.eye(4)), path)
    return path


def make_msd(root: Path, num_cases: int = 3, absolute: bool = False) -> Path:
    training = []
    for i in range(num_cases):
        image = write_nifti(root / "imagesTr" / f"case_{i:03d}.nii.gz", dtype=np.float32)
        label = write_nifti(root / "labelsTr" / f"case_{i:03d}.nii.gz")
        if absolute:
            training.append({"image": str(image), "label": str(label)})
        else:
            training.append({"image": f"./imagesTr/{image.name}", "label": f"./labelsTr/{label.name}"})
    (root / "dataset.json").write_text(json.dumps({"name": "t", "training": training[::-1]}))
    return root


def make_series(folder: Path, num_files: int = 3, suffix: str = ".dcm") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(num_files):
        (folder / f"1-{i + 1:03d}{suffix}").write_bytes(b"DICM")
    return folder


@pytest.mark.skipif(not HIPPOCAMPUS.is_dir(), reason=f"real MSD hippocampus data not found at {HIPPOCAMPUS}")
def test_msd_real_hippocampus():
    datalist = load_datalist(HIPPOCAMPUS)
    assert len(datalist) == 260
    assert detect_layout(HIPPOCAMPUS) == "msd"
    assert datalist == sorted(datalist, key=lambda c: c["image"])
    for case in datalist:
        assert os.path.isabs(case["image"]) and os.path.isfile(case["image"])
        assert os.path.isabs(case["label"]) and os.path.isfile(case["label"])
        assert Path(case["image"]).name == Path(case["label"]).name
    check_pairs(datalist)


@pytest.mark.skipif(not HIPPOCAMPUS.is_dir(), reason=f"real MSD hippocampus data not found at {HIPPOCAMPUS}")
def test_real_hippocampus_fold_split():
    split = fold_datalists(HIPPOCAMPUS, fold=3, num_folds=4, seed=0)
    sets = {k: {c["image"] for c in split[k]} for k in ("train", "val", "test")}
    assert [len(sets[k]) for k in ("train", "val", "test")] == [130, 65, 65]
    assert not (sets["train"] & sets["val"] or sets["train"] & sets["test"] or sets["val"] & sets["test"])


@pytest.mark.parametrize("absolute", [False, True])
def test_msd_relative_and_absolute_paths(tmp_path, absolute):
    root = make_msd(tmp_path / "ds", absolute=absolute)
    datalist = load_datalist(root, layout="msd")
    assert [Path(c["image"]).name for c in datalist] == ["case_000.nii.gz", "case_001.nii.gz", "case_002.nii.gz"]
    assert all(os.path.isabs(c["image"]) and os.path.isabs(c["label"]) for c in datalist)
    assert all(Path(c["label"]).parent.name == "labelsTr" for c in datalist)


def test_missing_dataset_dir(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=re.escape(f"dataset_dir {missing} does not exist")):
        load_datalist(missing)


def test_msd_missing_image_names_it(tmp_path):
    root = make_msd(tmp_path)
    (root / "imagesTr" / "case_001.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match="imagesTr/case_001.nii.gz"):
        load_datalist(root)


def test_msd_missing_label_names_image_and_label(tmp_path):
    root = make_msd(tmp_path)
    (root / "labelsTr" / "case_002.nii.gz").unlink()
    with pytest.raises(FileNotFoundError) as err:
        load_datalist(root)
    assert str(root / "labelsTr" / "case_002.nii.gz") in str(err.value)
    assert str(root / "imagesTr" / "case_002.nii.gz") in str(err.value)


def test_msd_empty_training_names_dataset_json(tmp_path):
    (tmp_path / "dataset.json").write_text(json.dumps({"training": []}))
    with pytest.raises(ValueError, match="dataset.json lists no training cases"):
        load_datalist(tmp_path)


@pytest.mark.parametrize(
    "content",
    ["{not json", json.dumps([1, 2]), json.dumps({"name": "no training"}), json.dumps({"training": {"a": 1}}),
     json.dumps({"training": [{"image": "./imagesTr/x.nii.gz"}]})],
    ids=["invalid-json", "not-an-object", "no-training", "training-not-list", "entry-without-label"],
)
def test_msd_malformed_dataset_json_names_it(tmp_path, content):
    (tmp_path / "dataset.json").write_text(content)
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / "dataset.json"))):
        load_datalist(tmp_path)


def test_unrecognised_layout_names_dir(tmp_path):
    (tmp_path / "something.txt").write_text("x")
    with pytest.raises(ValueError, match=re.escape(f"layout of dataset_dir {tmp_path}")):
        load_datalist(tmp_path)
    with pytest.raises(ValueError, match="layout must be one of"):
        load_datalist(tmp_path, layout="kaggle")


def make_nih(root: Path) -> dict[int, Path]:
    """A TCIA-like NIH Pancreas-CT tree: three patients, nested study/series folders, labels in the TCIA folder."""
    series = {
        1: make_series(root / "Pancreas-CT" / "PANCREAS_0001" / "11-24-2015-PANCREAS0001-Pancreas-18957" / "s1"),
        2: make_series(root / "Pancreas-CT" / "PANCREAS_0002" / "study" / "series", suffix=""),  # no extension
        10: make_series(root / "PANCREAS_0010" / "study" / "series"),  # patient directly below dataset_dir
    }
    for number in series:
        write_nifti(root / "TCIA_pancreas_labels-02-05-2017" / f"label{number:04d}.nii.gz")
    return series


def test_nih_layout(tmp_path):
    series = make_nih(tmp_path)
    (tmp_path / "Pancreas-CT" / "LICENSE").write_text("TCIA")
    assert detect_layout(tmp_path) == "nih"
    datalist = load_datalist(tmp_path)
    assert datalist == load_datalist(tmp_path, layout="nih")
    assert {c["image"] for c in datalist} == {str(p) for p in series.values()}
    for case in datalist:
        number = int(Path(case["image"]).parents[1].name.split("_")[1])
        assert Path(case["label"]).name == f"label{number:04d}.nii.gz"


def test_nih_manifest_nesting_and_labels_anywhere(tmp_path):
    series = make_series(tmp_path / "manifest-1599750808610" / "Pancreas-CT" / "PANCREAS_0007" / "a" / "b")
    label = write_nifti(tmp_path / "downloads" / "labels" / "nested" / "label0007.nii.gz")
    assert load_datalist(tmp_path) == [{"image": str(series), "label": str(label)}]


def test_nih_labels_only_detected_then_empty(tmp_path):
    write_nifti(tmp_path / "TCIA_pancreas_labels-02-05-2017" / "label0001.nii.gz")
    assert detect_layout(tmp_path) == "nih"
    with pytest.raises(ValueError, match=re.escape(f"below dataset_dir {tmp_path}")):
        load_datalist(tmp_path)


def test_nih_missing_label_names_image_and_expected_label(tmp_path):
    series = make_nih(tmp_path)
    (tmp_path / "TCIA_pancreas_labels-02-05-2017" / "label0002.nii.gz").unlink()
    with pytest.raises(FileNotFoundError) as err:
        load_datalist(tmp_path)
    assert str(series[2]) in str(err.value)
    assert str(tmp_path / "TCIA_pancreas_labels-02-05-2017" / "label0002.nii.gz") in str(err.value)


def test_nih_duplicate_label_is_an_error(tmp_path):
    make_nih(tmp_path)
    copy = write_nifti(tmp_path / "copy" / "label0001.nii.gz")
    with pytest.raises(ValueError, match=re.escape(str(copy))):
        load_datalist(tmp_path)


def test_nih_series_is_deepest_then_largest_leaf(tmp_path):
    patient = tmp_path / "PANCREAS_0003"
    make_series(patient / "study", num_files=9)  # shallower folder with files: not the series
    make_series(patient / "study" / "scout", num_files=1)
    largest = make_series(patient / "study" / "series", num_files=4)
    (largest / ".DS_Store").write_text("hidden files are ignored")
    write_nifti(tmp_path / "label0003.nii.gz")
    assert load_datalist(tmp_path)[0]["image"] == str(largest)


def test_nih_converted_nifti_images(tmp_path):
    image = write_nifti(tmp_path / "images" / "PANCREAS_0004.nii.gz")
    label = write_nifti(tmp_path / "labels" / "label0004.nii.gz")
    assert load_datalist(tmp_path, layout="nih") == [{"image": str(image), "label": str(label)}]


def test_check_pairs_shape_mismatch_names_both(tmp_path):
    image = write_nifti(tmp_path / "img.nii.gz", shape=(4, 5, 6))
    label = write_nifti(tmp_path / "lab.nii.gz", shape=(4, 5, 7))
    with pytest.raises(ValueError) as err:
        check_pairs([{"image": str(image), "label": str(label)}])
    for text in (str(image), str(label), "(4, 5, 6)", "(4, 5, 7)"):
        assert text in str(err.value)


def test_check_pairs_accepts_4d_image_and_skips_dicom(tmp_path):
    image = write_nifti(tmp_path / "img.nii.gz", shape=(4, 5, 6, 2))
    label = write_nifti(tmp_path / "lab.nii.gz", shape=(4, 5, 6))
    series = make_series(tmp_path / "series")
    check_pairs([{"image": str(image), "label": str(label)}, {"image": str(series), "label": str(label)}])


def test_check_pairs_missing_file_and_bad_case(tmp_path):
    label = write_nifti(tmp_path / "lab.nii.gz")
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "gone.nii.gz"))):
        check_pairs([{"image": str(tmp_path / "gone.nii.gz"), "label": str(label)}])
    with pytest.raises(ValueError, match="'image' and 'label'"):
        check_pairs([{"image": str(label)}])
