"""Synthetic CT phantoms (MSD layout) and the dataset_dir resolution."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from monai.transforms import LoadImaged

from vnas_monai.data import fold_datalists, load_datalist, make_phantom_dataset, resolve_dataset_dir

SMALL = {"num_cases": 4, "shape": (32, 28, 12), "spacing": (1.5, 1.5, 3.0)}


@pytest.fixture(scope="module")
def default_phantoms(tmp_path_factory) -> Path:
    """Default grid and classes; 3 cases instead of 12 to keep the tests fast."""
    return Path(make_phantom_dataset(tmp_path_factory.mktemp("phantoms") / "default", num_cases=3))


def load_case(root: Path, i: int) -> tuple[nib.Nifti1Image, nib.Nifti1Image]:
    return (nib.load(root / "imagesTr" / f"phantom_{i:03d}.nii.gz"),
            nib.load(root / "labelsTr" / f"phantom_{i:03d}.nii.gz"))


def test_default_dataset_layout_and_contents(default_phantoms):
    meta = json.loads((default_phantoms / "dataset.json").read_text())
    assert meta["modality"] == {"0": "CT"} and meta["labels"] == {"0": "background", "1": "organ"}
    assert meta["numTraining"] == len(meta["training"]) == 3
    assert meta["phantom"]["shape"] == [64, 64, 32] and meta["phantom"]["spacing"] == [1.0, 1.0, 2.5]
    datalist = load_datalist(default_phantoms)
    assert len(datalist) == 3
    for i in range(3):
        image, label = load_case(default_phantoms, i)
        assert image.shape == label.shape == (64, 64, 32)
        assert image.get_data_dtype() == np.float32 and label.get_data_dtype() == np.uint8
        np.testing.assert_allclose(nib.affines.voxel_sizes(image.affine), (1.0, 1.0, 2.5))
        np.testing.assert_allclose(image.affine, label.affine)
        assert set(np.unique(np.asarray(label.dataobj)).tolist()) == {0, 1}


def test_default_intensities_are_ct_like(default_phantoms):
    image, label = load_case(default_phantoms, 0)
    x, y = image.get_fdata(), np.asarray(label.dataobj)
    assert x.min() < -950 and 300 < x.max() < 800  # air and bone
    organ = np.median(x[y == 1])
    tissue = np.median(x[(y == 0) & (x > -50) & (x < 150)])
    assert -100 < organ < 240 and 0 < tissue < 60 and 35 < organ - tissue < 65
    assert 0.003 < (y == 1).mean() < 0.1


def test_three_classes_adds_tumour_inside_organ(tmp_path):
    root = Path(make_phantom_dataset(tmp_path / "p3", num_classes=3, **SMALL))
    assert json.loads((root / "dataset.json").read_text())["labels"]["2"] == "tumour"
    for i in range(SMALL["num_cases"]):
        _, label = load_case(root, i)
        y = np.asarray(label.dataobj)
        assert set(np.unique(y).tolist()) == {0, 1, 2}
        assert (y == 2).sum() < (y == 1).sum()


def test_small_parameters_and_anisotropic_affine(tmp_path):
    root = Path(make_phantom_dataset(tmp_path / "p", **SMALL))
    image, label = load_case(root, 3)
    assert image.shape == label.shape == (32, 28, 12)
    np.testing.assert_allclose(nib.affines.voxel_sizes(image.affine), (1.5, 1.5, 3.0))
    assert image.header.get_sform(coded=True)[1] == 1


def test_deterministic_and_seeded(tmp_path):
    a = Path(make_phantom_dataset(tmp_path / "a", **SMALL))
    b = Path(make_phantom_dataset(tmp_path / "b", **SMALL))
    c = Path(make_phantom_dataset(tmp_path / "c", seed=1, **SMALL))
    xa, xb, xc = (load_case(r, 1)[0].get_fdata() for r in (a, b, c))
    np.testing.assert_array_equal(xa, xb)
    assert not np.array_equal(xa, xc)


def test_idempotent_and_regenerated_on_new_parameters(tmp_path):
    out = tmp_path / "p"
    make_phantom_dataset(out, **SMALL)
    stamp = (out / "imagesTr" / "phantom_000.nii.gz").stat().st_mtime_ns
    make_phantom_dataset(out, **SMALL)
    assert (out / "imagesTr" / "phantom_000.nii.gz").stat().st_mtime_ns == stamp  # reused, not rewritten
    make_phantom_dataset(out, **{**SMALL, "num_cases": 5})
    assert len(load_datalist(out)) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]  # no temporary or old folder left


def test_incomplete_dataset_is_rewritten(tmp_path):
    out = Path(make_phantom_dataset(tmp_path / "p", **SMALL))
    (out / "labelsTr" / "phantom_002.nii.gz").unlink()
    make_phantom_dataset(out, **SMALL)
    assert (out / "labelsTr" / "phantom_002.nii.gz").is_file()


def test_never_overwrites_a_foreign_folder(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(FileExistsError, match=re.escape(str(tmp_path / "mine"))):
        make_phantom_dataset(tmp_path / "mine", **SMALL)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


@pytest.mark.parametrize(
    "kwargs",
    [{"num_classes": 4}, {"shape": (32, 32)}, {"spacing": (1.0, 0.0, 1.0)}, {"num_cases": 0}, {"seed": -1}],
    ids=["num_classes", "shape", "spacing", "num_cases", "seed"],
)
def test_invalid_parameters(tmp_path, kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        make_phantom_dataset(tmp_path / "p", **{**SMALL, **kwargs})


def test_loadable_by_monai_and_foldable(tmp_path):
    root = make_phantom_dataset(tmp_path / "p", **SMALL)
    case = load_datalist(root)[0]
    data = LoadImaged(["image", "label"], image_only=True)(case)
    assert tuple(data["image"].shape) == (32, 28, 12)
    np.testing.assert_allclose(np.diag(np.asarray(data["image"].affine))[:3], (1.5, 1.5, 3.0))
    split = fold_datalists(root, fold=0, num_folds=2)
    assert (len(split["train"]), len(split["val"]), len(split["test"])) == (1, 1, 2)


def test_resolve_dataset_dir(tmp_path, caplog):
    for given in (None, "", "phantom"):
        with caplog.at_level(logging.WARNING, logger="vnas_monai.data.phantoms"):
            path = resolve_dataset_dir(given, tmp_path / "out", **SMALL)
        assert path == str((tmp_path / "out" / "phantom_data").resolve())
        assert "synthetic CT phantoms" in caplog.text
    assert resolve_dataset_dir(str(tmp_path), tmp_path / "out") == str(tmp_path.resolve())
    with pytest.raises(FileNotFoundError, match=re.escape(f"dataset_dir {tmp_path / 'nope'} does not exist")):
        resolve_dataset_dir(tmp_path / "nope", tmp_path / "out")
    with pytest.raises(ValueError, match="output_dir"):
        resolve_dataset_dir(None, None)
