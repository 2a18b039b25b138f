"""The plan's rules on hand-made fingerprint values (nnU-Net's spacing rule, patch fit, flips, batch)."""

from __future__ import annotations

import numpy as np
import pytest

from vnas_monai.plan import rules


def test_target_spacing_median_when_isotropic():
    sp = [[1.0, 1.0, 1.0], [0.8, 0.8, 1.2], [1.2, 1.2, 1.4]]
    assert rules.target_spacing(sp, [[40, 50, 30]] * 3) == [1.0, 1.0, 1.2]


def test_target_spacing_low_resolution_axis_takes_10th_percentile():
    # CT with 5 mm slices in most cases and 2.5 mm in a few: anisotropy > 3 in spacing and in voxels
    z = [5.0] * 8 + [2.5, 2.5]
    sp = [[0.8, 0.8, s] for s in z]
    sh = [[512, 512, 60]] * 10
    target = rules.target_spacing(sp, sh)
    assert target[:2] == [0.8, 0.8]
    assert target[2] == pytest.approx(float(np.percentile(z, 10)))
    assert target[2] < float(np.median(z))


def test_target_spacing_keeps_median_when_voxels_are_not_anisotropic():
    # thick slices but as many slices as in-plane voxels: nnU-Net keeps the median
    sp = [[0.8, 0.8, 5.0]] * 9 + [[0.8, 0.8, 2.0]]
    assert rules.target_spacing(sp, [[64, 64, 64]] * 10)[2] == 5.0


def test_target_spacing_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        rules.target_spacing([[1.0, 1.0]], [[3, 3]])


def test_fit_patch_size_nearest_multiple_and_budget():
    assert rules.fit_patch_size([35, 50, 36], 16) == [32, 48, 32]
    assert rules.fit_patch_size([35, 50, 36], 32) == [32, 64, 32]
    assert rules.fit_patch_size([5, 196, 40], [8, 16, 8]) == [8, 192, 40]
    shrunk = rules.fit_patch_size([400, 300, 100], 32, max_voxels=128**3)
    assert np.prod(shrunk) <= 128**3 and all(s % 32 == 0 for s in shrunk)
    with pytest.raises(ValueError, match="3 positive"):
        rules.fit_patch_size([35, 50], 16)


def test_normalisation_by_modality():
    fg = {"mean": 50.0, "std": 20.0, "percentile_00_5": -80.0, "percentile_99_5": 200.0}
    ct = rules.normalisation("ct", fg)
    assert ct == {"mode": "ct", "clip": [-80.0, 200.0], "mean": 50.0, "std": 20.0}
    assert rules.normalisation("MRI", fg)["mode"] == "zscore"


def _centroid_case(offset, spread=(3.0, 3.0, 3.0)):
    a = np.array([20.0, 30.0, 20.0])
    return [a.tolist(), (a + np.asarray(offset)).tolist()], [list(spread), list(spread)]


def test_flips_refuse_the_axis_along_which_classes_follow_each_other():
    cases = [_centroid_case([0.5 * (-1) ** i, 15.0 + i, 0.0]) for i in range(10)]
    centroids, spreads = [c[0] for c in cases], [c[1] for c in cases]
    axes, evidence = rules.safe_flip_axes(centroids, spreads, ["bg", "a", "b"], [1.0, 1.0, 1.0])
    assert axes == [0, 2]
    assert evidence["1"][0]["classes"] == ["a", "b"] and evidence["1"][0]["sign_agreement"] == 1.0


def test_flips_allow_overlapping_offsets_and_inconsistent_signs():
    # 2 mm offset against a 4 mm spread (hippocampus left-right), and a large offset of random sign
    cases = [_centroid_case([2.0, 10.0 * (-1) ** i, 0.0], spread=(4.0, 4.0, 4.0)) for i in range(10)]
    axes, _ = rules.safe_flip_axes([c[0] for c in cases], [c[1] for c in cases], ["bg", "a", "b"], [1.0] * 3)
    assert axes == [0, 1, 2]


def test_flips_lateral_names_and_single_class():
    cases = [[[10.0, 10.0, 10.0]]] * 3
    spreads = [[[2.0, 2.0, 2.0]]] * 3
    assert rules.safe_flip_axes(cases, spreads, ["bg", "liver"], [1.0] * 3)[0] == [0, 1, 2]
    axes, evidence = rules.safe_flip_axes(cases, spreads, ["bg", "Left kidney"], [1.0] * 3)
    assert axes == [1, 2] and "left/right" in evidence["0"][0]


def test_batch_plan_bounds():
    # plenty of memory and data: capped at max_patches, split into pos/neg pairs
    assert rules.batch_plan([32, 48, 32], 2048, 4096, 1e8) == {"patches_per_step": 8, "batch_size": 4, "num_samples": 2}
    # little memory: nnU-Net's minimum of 2 patches
    assert rules.batch_plan([128, 128, 128], 2048, 100, 1e9)["patches_per_step"] == 2
    # an odd count is one sample per case
    assert rules.batch_plan([32, 32, 32], 1024, 5 * 32**3 * 1024 / 2**20, 1e9) == {
        "patches_per_step": 5, "batch_size": 5, "num_samples": 1}


def test_foreground_ratio():
    assert rules.foreground_ratio([0.02, 0.03])["ratio"] == pytest.approx(1 / 3)
    assert rules.foreground_ratio([0.2, 0.004]) == {"ratio": 0.5, "pos": 1, "neg": 1}
