"""Cross-validation folds and the S_train / S_val / S_test protocol."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from vnas_monai.data import fold_datalists, load_datalist, make_folds, read_folds, split_train_val, write_folds

NUM_CASES = 24


def fake_datalist(n: int = NUM_CASES) -> list[dict[str, str]]:
    return [{"image": f"/d/imagesTr/c{i:03d}.nii.gz", "label": f"/d/labelsTr/c{i:03d}.nii.gz"} for i in range(n)]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A tiny MSD-layout dataset of ``NUM_CASES`` 4x4x4 image/label pairs."""
    root = tmp_path_factory.mktemp("folds") / "ds"
    training = []
    for i in range(NUM_CASES):
        for sub in ("imagesTr", "labelsTr"):
            (root / sub).mkdir(parents=True, exist_ok=True)
            nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.uint8), np.eye(4)), root / sub / f"c{i:03d}.nii.gz")
        training.append({"image": f"./imagesTr/c{i:03d}.nii.gz", "label": f"./labelsTr/c{i:03d}.nii.gz"})
    (root / "dataset.json").write_text(json.dumps({"training": training}))
    return root


def images(cases) -> set[str]:
    return {c["image"] for c in cases}


def test_make_folds_disjoint_cover_balanced():
    datalist = fake_datalist(23)
    folds = make_folds(datalist, num_folds=4, seed=0)
    assert folds["num_folds"] == 4 and folds["seed"] == 0 and len(folds["folds"]) == 4
    sets = [images(f) for f in folds["folds"]]
    assert sum(len(s) for s in sets) == 23 and set().union(*sets) == images(datalist)
    assert sorted(len(f) for f in folds["folds"]) == [5, 6, 6, 6]


def test_make_folds_deterministic_per_seed_and_differ_across_seeds():
    datalist = fake_datalist()
    assert make_folds(datalist, seed=3) == make_folds(datalist, seed=3)
    assert make_folds(datalist, seed=3)["folds"] != make_folds(datalist, seed=4)["folds"]
    assert make_folds(datalist)["folds"][0][0] is not datalist[0]  # cases are copied


def test_make_folds_errors():
    with pytest.raises(ValueError, match="Cannot make 4 folds from 3 case"):
        make_folds(fake_datalist(3), num_folds=4)
    with pytest.raises(ValueError, match="num_folds"):
        make_folds(fake_datalist(3), num_folds=0)


def test_write_read_roundtrip(tmp_path):
    folds = make_folds(fake_datalist(), num_folds=4, seed=1)
    path = write_folds(folds, tmp_path / "sub" / "folds.json")
    assert read_folds(path) == folds
    assert [p.name for p in path.parent.iterdir()] == ["folds.json"]  # no temporary file left behind


@pytest.mark.parametrize(
    "content",
    ["{oops", json.dumps({"folds": []}), json.dumps({"num_folds": 2, "folds": [[]]}),
     json.dumps({"num_folds": 1, "folds": [[{"image": "a"}]]}),
     json.dumps({"num_folds": 2, "folds": [[{"image": "a", "label": "b"}], [{"image": "a", "label": "b"}]]})],
    ids=["invalid-json", "no-num-folds", "wrong-fold-count", "case-without-label", "case-in-two-folds"],
)
def test_read_folds_malformed_names_file(tmp_path, content):
    path = tmp_path / "folds.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=re.escape(str(path))):
        read_folds(path)


def test_read_folds_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "none.json"))):
        read_folds(tmp_path / "none.json")


def test_split_train_val_two_to_one_and_minimum():
    train, val = split_train_val(fake_datalist(18))
    assert (len(train), len(val)) == (12, 6) and not images(train) & images(val)
    train, val = split_train_val(fake_datalist(2))
    assert (len(train), len(val)) == (1, 1)
    with pytest.raises(ValueError, match="need at least 2"):
        split_train_val(fake_datalist(1))
    with pytest.raises(ValueError, match="val_fraction"):
        split_train_val(fake_datalist(4), val_fraction=1.0)


def test_split_train_val_independent_of_input_order():
    cases = fake_datalist(12)
    assert split_train_val(cases, seed=5) == split_train_val(cases[::-1], seed=5)


def test_fold_datalists_protocol(dataset):
    all_images = images(load_datalist(dataset))
    tests = []
    for fold in range(4):
        split = fold_datalists(dataset, fold=fold, num_folds=4, seed=0)
        train, val, test = images(split["train"]), images(split["val"]), images(split["test"])
        assert not train & val and not train & test and not val & test
        assert train | val | test == all_images
        assert (len(train), len(val), len(test)) == (12, 6, 6)  # train : val = 2 : 1 on the 18 non-test cases
        assert split["trainval"] == split["train"] + split["val"]
        tests.append(test)
    assert set().union(*tests) == all_images and sum(len(t) for t in tests) == NUM_CASES


def test_fold_datalists_deterministic_and_seeded(dataset):
    assert fold_datalists(dataset, fold=1) == fold_datalists(dataset, fold=1)
    assert fold_datalists(dataset, fold=1, seed=0)["test"] != fold_datalists(dataset, fold=1, seed=1)["test"]


def test_fold_datalists_single_fold_has_no_test(dataset):
    split = fold_datalists(dataset, fold=0, num_folds=1)
    assert split["test"] == []
    assert (len(split["train"]), len(split["val"])) == (16, 8)
    assert images(split["trainval"]) == images(load_datalist(dataset))


def test_fold_datalists_fold_out_of_range(dataset):
    for fold in (4, -1):
        with pytest.raises(ValueError, match=r"fold.*num_folds"):
            fold_datalists(dataset, fold=fold, num_folds=4)


def test_fold_datalists_max_cases(dataset):
    split = fold_datalists(dataset, fold=0, num_folds=2, max_cases=6)
    assert images(split["trainval"]) | images(split["test"]) == images(load_datalist(dataset)[:6])
    assert (len(split["train"]), len(split["val"]), len(split["test"])) == (2, 1, 3)
    with pytest.raises(ValueError, match="Cannot make 4 folds from 3"):
        fold_datalists(dataset, max_cases=3)


def test_fold_datalists_file_written_then_reused(dataset, tmp_path):
    path = tmp_path / "folds.json"
    first = fold_datalists(dataset, fold=2, datalist_file=path, seed=7)
    assert read_folds(path)["seed"] == 7
    frozen = read_folds(path)
    frozen["folds"] = [frozen["folds"][i] for i in (1, 0, 2, 3)]  # an edited split is what gets used
    write_folds(frozen, path)
    again = fold_datalists(dataset, fold=0, datalist_file=path, seed=7)
    assert images(again["test"]) == {c["image"] for c in frozen["folds"][0]}
    assert images(first["test"]) == images(fold_datalists(dataset, fold=2, datalist_file=path, seed=7)["test"])


def test_fold_datalists_file_mismatch_names_file(dataset, tmp_path):
    path = tmp_path / "folds.json"
    fold_datalists(dataset, fold=0, num_folds=4, datalist_file=path)
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*num_folds=4.*num_folds=3"):
        fold_datalists(dataset, fold=0, num_folds=3, datalist_file=path)
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*max_cases"):
        fold_datalists(dataset, fold=0, num_folds=4, datalist_file=path, max_cases=8)
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*made for dataset_dir"):
        fold_datalists(other, fold=0, num_folds=4, datalist_file=path)


def test_fold_datalists_checks_pairs(tmp_path):
    root = tmp_path / "ds"
    training = []
    for i in range(4):
        for sub, shape in (("imagesTr", (4, 4, 4)), ("labelsTr", (4, 4, 5 if i == 2 else 4))):
            (root / sub).mkdir(parents=True, exist_ok=True)
            nib.save(nib.Nifti1Image(np.zeros(shape, np.uint8), np.eye(4)), root / sub / f"c{i}.nii.gz")
        training.append({"image": f"./imagesTr/c{i}.nii.gz", "label": f"./labelsTr/c{i}.nii.gz"})
    (root / "dataset.json").write_text(json.dumps({"training": training}))
    with pytest.raises(ValueError, match=re.escape(str(root / "labelsTr" / "c2.nii.gz"))):
        fold_datalists(root, fold=0, num_folds=2)


def test_fold_datalists_file_with_relative_paths(dataset, tmp_path):
    path = tmp_path / "portable.json"
    cases = [{"image": f"./imagesTr/c{i:03d}.nii.gz", "label": f"./labelsTr/c{i:03d}.nii.gz"} for i in range(6)]
    write_folds({"num_folds": 2, "folds": [cases[:3], cases[3:]]}, path)
    split = fold_datalists(dataset, fold=1, num_folds=2, datalist_file=path)
    assert images(split["test"]) == {str(dataset / "imagesTr" / f"c{i:03d}.nii.gz") for i in range(3, 6)}
    assert all(Path(c["label"]).is_file() for c in split["trainval"])


def test_training_cases_never_the_held_out_fold():
    from vnas_monai.data import training_cases

    splits = {"train": [1, 2], "val": [3], "trainval": [1, 2, 3], "test": [4]}
    assert training_cases(splits) == [1, 2, 3] and training_cases(splits, "train") == [1, 2]
    with pytest.raises(ValueError, match="never the held-out 'test'"):
        training_cases(splits, "test")
    with pytest.raises(ValueError, match="holds no case"):
        training_cases({**splits, "val": []}, "val")
