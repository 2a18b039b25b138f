"""Brain-wise normalisation (Eq. 1-2), its dataset statistics, and the auto-fitting patches (§2.3)."""

from __future__ import annotations

import math

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from vnas_monai.data import (
    BrainWiseNormalized,
    autofit_inference,
    autofit_starts,
    axis_starts,
    brain_box,
    brain_wise_normalize,
    extract_patches,
    fit_brain_stats,
    stitch_patches,
)


# ----------------------------------------------------------------------------------------------- normalisation
def test_hand_computed_case():
    # channel 0, mu = 5, sigma = 2: brain values 2, 4, 6, 10 -> z = -1.5, -0.5, 0.5, 2.5; min -1.5, range 4
    # -> (z - min) / range = 0, 0.25, 0.5, 1 -> 100 * (. + 0.1) = 10, 35, 60, 110; zeros stay 0
    # channel 1: a constant brain (7, 7) -> xi * lam = 10
    image = torch.tensor([[[[0.0, 2.0, 4.0], [6.0, 0.0, 10.0]]],
                          [[[7.0, 0.0, 0.0], [0.0, 7.0, 0.0]]]])  # (2, 1, 2, 3)
    out = brain_wise_normalize(image, mean=[5.0, 3.0], std=[2.0, 1.0])
    assert out.dtype == torch.float32 and out.shape == image.shape
    np.testing.assert_allclose(out[0, 0].numpy(), [[0.0, 10.0, 35.0], [60.0, 0.0, 110.0]], rtol=1e-6)
    np.testing.assert_allclose(out[1, 0].numpy(), [[10.0, 0.0, 0.0], [0.0, 10.0, 0.0]], rtol=1e-6)
    custom = brain_wise_normalize(image[:1], mean=5.0, std=2.0, xi=2.0, lam=0.5)
    np.testing.assert_allclose(custom[0, 0].numpy(), [[0.0, 1.0, 1.5], [2.0, 0.0, 3.0]], rtol=1e-6)


def test_against_numpy_on_a_random_volume():
    rng = np.random.default_rng(0)
    a = rng.normal(300.0, 50.0, size=(1, 9, 8, 7)).astype(np.float32)
    a[:, :2] = 0.0
    mu, sigma = 280.0, 40.0
    brain = a[0] != 0
    z = (a[0][brain].astype(np.float64) - mu) / sigma
    expected = np.zeros_like(a[0])
    expected[brain] = 100.0 * ((z - z.min()) / (z.max() - z.min()) + 0.1)
    d = BrainWiseNormalized("image", mean=[mu], std=[sigma])({"image": MetaTensor(torch.as_tensor(a))})
    assert isinstance(d["image"], MetaTensor)
    np.testing.assert_allclose(d["image"][0].numpy(), expected, rtol=1e-5, atol=1e-4)
    assert float(d["image"][0][brain].min()) == pytest.approx(10.0) and float(d["image"].max()) == pytest.approx(110)
    assert bool((d["image"][0][~brain] == 0).all())


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"key 'image': std must be > 0"):
        BrainWiseNormalized("image", mean=0.0, std=[1.0, 0.0])({"image": torch.ones(2, 2, 2, 2)})
    with pytest.raises(ValueError, match=r"key 'image': mean must be one finite value or one per channel \(2\)"):
        BrainWiseNormalized("image", mean=[1.0, 2.0, 3.0], std=1.0)({"image": torch.ones(2, 2, 2, 2)})
    with pytest.raises(ValueError, match="xi and lam must be > 0"):
        BrainWiseNormalized("image", mean=0.0, std=1.0, lam=0.0)


def _save(data: np.ndarray, path) -> str:
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    return str(path)


def test_fit_brain_stats_streams_over_both_layouts(tmp_path):
    rng = np.random.default_rng(1)
    vols = []
    for i in range(3):
        v = rng.normal(100.0 * (1 + np.arange(2)), 10.0, size=(6, 5, 4, 2)).astype(np.float32)
        v[rng.random((6, 5, 4)) < 0.4] = 0.0
        vols.append(v)
    msd = [{"image": _save(v, tmp_path / f"case{i}.nii.gz")} for i, v in enumerate(vols)]  # 4D, channels last
    brats = [{"image": [_save(v[..., c], tmp_path / f"case{i}_{c}.nii.gz") for c in range(2)], "case": f"c{i}"}
             for i, v in enumerate(vols)]
    for datalist in (msd, brats):
        stats = fit_brain_stats(datalist)
        for c in range(2):
            values = np.concatenate([v[..., c][v[..., c] != 0] for v in vols]).astype(np.float64)
            assert stats["count"][c] == values.size
            assert stats["mean"][c] == pytest.approx(values.mean(), rel=1e-12)
            assert stats["std"][c] == pytest.approx(values.std(), rel=1e-10)
        assert stats["num_cases"] == 3 and isinstance(stats["mean"][0], float)
    with pytest.raises(FileNotFoundError, match=r"case 'c0': image file .*nope\.nii\.gz does not exist"):
        fit_brain_stats([{"image": [str(tmp_path / "nope.nii.gz")], "case": "c0"}])
    zero = _save(np.zeros((3, 3, 3), np.float32), tmp_path / "zero.nii.gz")
    with pytest.raises(ValueError, match=r"channel\(s\) \[0\] have no non-zero voxel"):
        fit_brain_stats([{"image": zero}])


# ----------------------------------------------------------------------------------------------- auto-fitting
def test_axis_starts_hand_computed():
    assert axis_starts(10, 150, 128) == [10, 32]  # 2 patches, overlap 106, step 22
    assert axis_starts(20, 100, 128) == [6]  # one patch centred: 20 - floor(28 / 2)
    assert axis_starts(0, 128, 128) == [0]
    assert axis_starts(0, 300, 128) == [0, 86, 172]  # overlap floor(84 / 2) = 42, step 86
    assert axis_starts(5, 200, 64) == [4, 50, 96, 142]  # overlap floor(56 / 3) = 18, step 46, first -floor(2 / 2)


@pytest.mark.parametrize("patch", [16, 64, 128])
def test_axis_starts_cover_with_the_fewest_symmetric_patches(patch):
    for extent in range(1, 5 * patch, 7):
        starts = axis_starts(3, extent, patch)
        assert len(starts) == math.ceil(extent / patch)
        assert starts[0] <= 3 and starts[-1] + patch >= 3 + extent
        steps = {b - a for a, b in zip(starts, starts[1:])}
        assert len(steps) <= 1 and all(0 < s <= patch for s in steps)
        assert abs((3 - starts[0]) - (starts[-1] + patch - 3 - extent)) <= len(starts)  # symmetric up to rounding


def test_brain_box_and_grid():
    image = torch.zeros(2, 20, 30, 10)
    image[1, 4:15, 2:29, 3:7] = 1.0
    assert brain_box(image) == [(4, 15), (2, 29), (3, 7)]
    assert brain_box(torch.zeros(1, 4, 4, 4)) == [(0, 4), (0, 4), (0, 4)]
    starts = autofit_starts([(0, 150), (0, 100), (0, 128)], (128, 128, 128))
    assert starts == [(0, -14, 0), (22, -14, 0)]


def test_identity_prediction_is_reconstructed_exactly():
    rng = np.random.default_rng(2)
    volume = torch.zeros(2, 40, 30, 20)
    volume[:, 5:35, 3:28, 2:18] = torch.as_tensor(rng.normal(size=(2, 30, 25, 16)), dtype=torch.float32)
    patch = (16, 12, 32)  # z patch larger than the volume: padded
    starts = autofit_starts(brain_box(volume), patch)
    assert len(starts) == 2 * 3 * 1
    patches = extract_patches(volume, starts, patch)
    assert patches.shape == (6, 2, 16, 12, 32)
    assert [s[2] for s in starts] == [-6] * 6  # z: box 2 .. 18 centred in 32 voxels
    assert bool((patches[..., :6] == 0).all()) and bool((patches[..., 26:] == 0).all())  # the padding
    assert torch.equal(stitch_patches(patches, starts, volume.shape[1:]), volume)
    assert torch.equal(autofit_inference(volume, lambda x: x, patch, batch_size=4), volume)


def test_overlaps_are_averaged():
    starts = [(0,), (2,)]
    patches = torch.stack([torch.full((1, 4), 1.0), torch.full((1, 4), 3.0)])  # (2, 1, 4) on a 1D volume of 7
    out = stitch_patches(patches, starts, (7,))
    assert out[0].tolist() == [1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 0.0]
