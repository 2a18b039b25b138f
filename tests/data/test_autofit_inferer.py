"""The auto-fitting patches as a MONAI-style inferer (Wang, BraTS 2019, §2.3), as the NAS-3D-U-Net bundles use it."""

import pytest
import torch

from vnas_monai.data.autofit import AutoFitInferer, patch_inferer


def test_autofit_inferer_reconstructs_the_brain_cube_and_zeroes_outside():
    """An identity network gives back each volume of the batch inside its brain cube (every voxel covered, overlaps
    averaged); outside the cube the prediction is 0. Patches are called with the network's patch size."""
    x = torch.zeros(2, 2, 40, 30, 20)
    x[0, :, 5:37, 3:29, 2:18] = torch.rand(2, 32, 26, 16) + 0.5
    x[1, :, 10:20, 10:20, 5:10] = torch.rand(2, 10, 10, 5) + 0.5
    shapes = []

    def net(p):
        shapes.append(tuple(p.shape[2:]))
        return p * 1.0

    out = AutoFitInferer(roi_size=(16, 16, 16), sw_batch_size=3)(x, net)
    assert out.shape == x.shape
    torch.testing.assert_close(out, x)
    assert set(shapes) == {(16, 16, 16)}
    # volume 0: box 32 x 26 x 16 -> 2 x 2 x 1 patches in batches of 3 (2 calls); volume 1: one patch (1 call)
    assert len(shapes) == 3


def test_patch_inferer_names():
    assert isinstance(patch_inferer("autofit", (16, 16, 16)), AutoFitInferer)
    from monai.inferers import SlidingWindowInferer

    assert isinstance(patch_inferer("sliding_window", (16, 16, 16), overlap=0.25), SlidingWindowInferer)
    with pytest.raises(ValueError, match="patching must be one of"):
        patch_inferer("tiles", (16, 16, 16))
