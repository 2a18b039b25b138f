"""ClipIntensityd and CheckImageLabeld, including the real DICOM series / NIfTI segmentation geometry."""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged, Orientationd

from vnas_monai.data.transforms import CheckImageLabeld, ClipIntensityd


def shared_data_dir() -> Path:
    """The project's read-only real data: ``$VNAS_SHARED_DATA``, else the repository's sibling ``../shared/data``."""
    env = os.environ.get("VNAS_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


TOTALSEG = shared_data_dir() / "totalseg_ct"
SKIP_REASON = f"real TotalSegmentator CT data not found at {TOTALSEG}"
needs_totalseg = pytest.mark.skipif(not TOTALSEG.is_dir(), reason=SKIP_REASON)

IMAGE, LABEL = "/data/img_001.nii.gz", "/data/lab_001.nii.gz"


def meta_tensor(array, filename: str, affine=None, **meta) -> MetaTensor:
    affine = np.diag([0.8, 0.8, 2.5, 1.0]) if affine is None else affine
    meta = {"filename_or_obj": filename, **meta}
    return MetaTensor(torch.as_tensor(array), affine=torch.as_tensor(affine), meta=meta)


def pair(shape=(1, 6, 5, 4), image_affine=None, label_affine=None, label=None) -> dict:
    image = torch.linspace(-1000, 1000, int(np.prod(shape))).reshape(shape)
    label = torch.zeros(shape, dtype=torch.uint8) if label is None else label
    return {"image": meta_tensor(image, IMAGE, image_affine), "label": meta_tensor(label, LABEL, label_affine)}


# ----------------------------------------------------------------------------------------------- ClipIntensityd


def test_clip_metatensor_keeps_meta():
    data = pair()
    out = ClipIntensityd("image", clip=[-100, 240])(data)
    assert float(out["image"].min()) == -100 and float(out["image"].max()) == 240
    assert isinstance(out["image"], MetaTensor) and out["image"].meta["filename_or_obj"] == IMAGE
    torch.testing.assert_close(out["image"].affine, data["image"].affine)
    assert float(data["image"].min()) == -1000  # the input is not modified


def test_clip_numpy_and_one_sided():
    data = {"image": np.array([-500.0, 0.0, 500.0])}
    np.testing.assert_array_equal(ClipIntensityd("image", a_min=-100, a_max=240)(data)["image"], [-100, 0, 240])
    np.testing.assert_array_equal(ClipIntensityd("image", a_max=240)(data)["image"], [-500, 0, 240])
    np.testing.assert_array_equal(ClipIntensityd("image", a_min=-100)(data)["image"], [-100, 0, 500])


def test_clip_keeps_integer_dtype():
    data = {"image": torch.tensor([-1024, 0, 1500], dtype=torch.int16), "label": np.array([-5, 3], dtype=np.int16)}
    out = ClipIntensityd(["image", "label"], clip=[-100.5, 240.5])(data)
    assert out["image"].dtype == torch.int16 and out["image"].tolist() == [-100, 0, 240]
    assert out["label"].dtype == np.int16 and out["label"].tolist() == [-5, 3]


def test_clip_none_is_a_noop():
    data = pair()
    out = ClipIntensityd(["image", "label"])(data)
    assert out["image"] is data["image"] and out["label"] is data["label"]


def test_clip_invalid_windows():
    with pytest.raises(ValueError, match="a_min=240.0 > a_max=-100.0"):
        ClipIntensityd("image", a_min=240, a_max=-100)
    with pytest.raises(ValueError, match=r"\[min, max\] pair"):
        ClipIntensityd("image", clip=[1, 2, 3])
    with pytest.raises(ValueError, match="either as clip"):
        ClipIntensityd("image", a_min=0, clip=[-100, 240])


def test_transforms_pickle():
    clip = pickle.loads(pickle.dumps(ClipIntensityd("image", clip=(-100, 240))))
    assert (clip.a_min, clip.a_max) == (-100.0, 240.0)
    check = pickle.loads(pickle.dumps(CheckImageLabeld(num_classes=3)))
    assert check.num_classes == 3 and check.keys == ("image", "label")


# ----------------------------------------------------------------------------------------------- CheckImageLabeld


def test_check_passes_and_returns_data_unchanged():
    data = pair(label=torch.randint(0, 3, (1, 6, 5, 4), dtype=torch.uint8))
    out = CheckImageLabeld(num_classes=3)(data)
    assert out["image"] is data["image"] and out["label"] is data["label"]


def test_check_shape_mismatch_names_files_and_shapes():
    data = pair()
    data["label"] = meta_tensor(torch.zeros(1, 6, 5, 3), LABEL)
    with pytest.raises(ValueError) as err:
        CheckImageLabeld()(data)
    for text in (IMAGE, LABEL, "(6, 5, 4)", "(6, 5, 3)"):
        assert text in str(err.value)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_check_non_finite_image_names_file(bad):
    data = pair()
    data["image"][0, 1, 2, 3] = bad
    with pytest.raises(ValueError, match=re.escape(IMAGE) + ".*1 NaN/inf"):
        CheckImageLabeld()(data)


def test_check_label_values_lists_bad_values():
    label = torch.zeros(1, 6, 5, 4, dtype=torch.uint8)
    label[0, 0, 0, :3] = torch.tensor([2, 5, 7], dtype=torch.uint8)
    with pytest.raises(ValueError, match=re.escape(LABEL) + r".*" + re.escape(IMAGE) + r".*range\(3\): 5, 7\.$"):
        CheckImageLabeld(num_classes=3)(pair(label=label))
    CheckImageLabeld()(pair(label=label))  # no num_classes: values are not checked


def test_check_label_non_integer_and_negative_values():
    label = torch.zeros(1, 6, 5, 4)
    label[0, 0, 0, 0], label[0, 0, 0, 1] = 0.5, -1.0
    with pytest.raises(ValueError, match=r"range\(2\): -1, 0\.5"):
        CheckImageLabeld(num_classes=2)(pair(label=label))


def test_check_affine_mismatch_names_both_files():
    shifted = np.diag([0.8, 0.8, 2.5, 1.0])
    shifted[:3, 3] = (0.0, 5.0, 0.0)
    with pytest.raises(ValueError, match=re.escape(IMAGE) + ".*" + re.escape(LABEL) + ".*same physical grid"):
        CheckImageLabeld()(pair(label_affine=shifted))
    CheckImageLabeld(check_affine=False)(pair(label_affine=shifted))
    scaled = np.diag([0.8, 0.8, 2.0, 1.0])
    with pytest.raises(ValueError, match="same physical grid"):
        CheckImageLabeld()(pair(label_affine=scaled))


def test_check_affine_tolerance_is_relative():
    nudged = np.diag([0.8, 0.8, 2.5, 1.0])
    nudged[:3, 3] = (1e-5, 0.0, 0.0)
    nudged[2, 2] = 2.5 * (1 + 1e-4)
    CheckImageLabeld()(pair(label_affine=nudged))


def test_check_same_grid_stored_flipped_or_permuted_passes():
    image_affine = np.diag([0.8, 0.8, 2.5, 1.0])
    flipped = image_affine.copy()
    flipped[1, 1], flipped[1, 3] = -0.8, 0.8 * 4  # y axis reversed, same voxel centres
    data = pair(image_affine=image_affine, label_affine=flipped)
    CheckImageLabeld()(data)
    permuted = image_affine[:, [1, 0, 2, 3]]  # label stored (y, x, z)
    data["label"] = meta_tensor(torch.zeros(1, 5, 6, 4), LABEL, permuted)
    CheckImageLabeld()(data)
    with pytest.raises(ValueError, match="spatial shape"):
        CheckImageLabeld(check_affine=False)(data)


def test_check_lps_space_is_converted():
    ras = np.diag([0.8, 0.8, 2.5, 1.0])
    data = pair(image_affine=np.diag([-1.0, -1.0, 1.0, 1.0]) @ ras, label_affine=ras)
    data["image"].meta["space"] = "LPS"
    CheckImageLabeld()(data)
    data["image"].meta["space"] = "RAS"
    with pytest.raises(ValueError, match="same physical grid"):
        CheckImageLabeld()(data)


def test_check_channel_last_straight_from_loader():
    data = pair(shape=(6, 5, 4))
    image = torch.zeros(6, 5, 4, 2)
    data["image"] = meta_tensor(image, IMAGE, original_channel_dim=-1, spatial_shape=np.array([6, 5, 4]))
    CheckImageLabeld()(data)


def test_check_numpy_with_and_without_meta_dicts():
    data = {"image": np.zeros((1, 6, 5, 4), np.float32), "label": np.zeros((1, 6, 5, 3), np.uint8)}
    with pytest.raises(ValueError, match=r"<image> has spatial shape \(6, 5, 4\).*<label> has \(6, 5, 3\)"):
        CheckImageLabeld()(data)
    data["label"] = np.zeros((1, 6, 5, 4), np.uint8)
    data["image_meta_dict"] = {"filename_or_obj": IMAGE, "affine": np.eye(4)}
    data["label_meta_dict"] = {"filename_or_obj": LABEL, "affine": np.diag([2.0, 1.0, 1.0, 1.0])}
    with pytest.raises(ValueError, match=re.escape(IMAGE) + ".*" + re.escape(LABEL)):
        CheckImageLabeld()(data)
    data["image"][0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=re.escape(IMAGE) + ".*NaN"):
        CheckImageLabeld()(data)


def test_check_keys():
    with pytest.raises(ValueError, match="keys=\\(image_key, label_key\\)"):
        CheckImageLabeld(keys=("image",))
    with pytest.raises(KeyError, match="label"):
        CheckImageLabeld()({"image": pair()["image"]})
    data = {"image": pair()["image"]}
    assert CheckImageLabeld(allow_missing_keys=True, num_classes=2)(data)["image"] is data["image"]


# ----------------------------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def dicom_pair() -> dict:
    if not TOTALSEG.is_dir():
        pytest.skip(SKIP_REASON)
    case = {"image": str(TOTALSEG / "example_ct_dicom"), "label": str(TOTALSEG / "example_seg_dicom.nii.gz")}
    return Compose([LoadImaged("image", reader="ITKReader"), LoadImaged("label")])(case)


@needs_totalseg
def test_real_dicom_series_matches_its_nifti_segmentation(dicom_pair):
    image, label = dicom_pair["image"], dicom_pair["label"]
    assert tuple(image.shape) == tuple(label.shape) == (512, 512, 20)
    np.testing.assert_allclose(image.pixdim[:3], (0.9765625, 0.9765625, 2.0))
    assert float(image.min()) < -900 and float(image.max()) > 500  # Hounsfield units
    CheckImageLabeld(num_classes=118)(dicom_pair)


@needs_totalseg
def test_real_dicom_geometry_raw_arrays_are_flipped_until_orientationd(dicom_pair):
    image, label = dicom_pair["image"], dicom_pair["label"]
    # ITKReader gives the series a RAS affine with axis codes LPS; the NIfTI segmentation is stored LAS.
    assert image.meta["space"] == "RAS" and label.meta["space"] == "RAS"
    assert np.sign(float(image.affine[1, 1])) == -np.sign(float(label.affine[1, 1]))
    x, y = image.numpy(), label.numpy()

    def bone_hu(lab: np.ndarray) -> float:  # vertebrae (TotalSegmentator v2 labels 26..50) are bright
        return float(np.median(x[(lab >= 26) & (lab <= 50)]))

    assert bone_hu(y) < 0 < 150 < bone_hu(y[:, ::-1])  # raw arrays: aligned only with the y axis flipped
    out = Compose([EnsureChannelFirstd(["image", "label"]), Orientationd(["image", "label"], axcodes="RAS"),
                   CheckImageLabeld(num_classes=118)])(dict(dicom_pair))
    torch.testing.assert_close(out["image"].affine, out["label"].affine)
    x = out["image"][0].numpy()
    assert bone_hu(out["label"][0].numpy()) > 150  # after Orientationd, voxels align


@needs_totalseg
def test_real_dicom_lps_affine_handled():
    case = {"image": str(TOTALSEG / "example_ct_dicom"), "label": str(TOTALSEG / "example_seg_dicom.nii.gz")}
    data = Compose([LoadImaged("image", reader="ITKReader", affine_lps_to_ras=False), LoadImaged("label")])(case)
    assert data["image"].meta["space"] == "LPS"
    CheckImageLabeld()(data)


@needs_totalseg
def test_real_dicom_misregistered_label_is_caught(dicom_pair):
    data = dict(dicom_pair)
    label = data["label"].clone()
    affine = label.affine.clone()
    affine[2, 3] += 10.0  # 5 slices off
    label.affine = affine
    data["label"] = label
    with pytest.raises(ValueError) as err:
        CheckImageLabeld()(data)
    assert str(TOTALSEG / "example_ct_dicom") in str(err.value)
    assert str(TOTALSEG / "example_seg_dicom.nii.gz") in str(err.value)


@needs_totalseg
def test_real_nifti_ct_pair():
    case = {"image": str(TOTALSEG / "example_ct_sm.nii.gz"), "label": str(TOTALSEG / "example_seg.nii.gz")}
    data = Compose([LoadImaged(["image", "label"]), EnsureChannelFirstd(["image", "label"]),
                    ClipIntensityd("image", clip=[-100, 240])])(case)
    assert float(data["image"].min()) == -100 and float(data["image"].max()) == 240
    CheckImageLabeld(num_classes=118)(data)
    with pytest.raises(ValueError, match=re.escape(case["label"]) + r".*range\(8\): 8, "):
        CheckImageLabeld(num_classes=8)(data)
