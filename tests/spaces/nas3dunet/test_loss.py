"""The weighted multi-class soft Dice of Eq. 3 over sigmoid region channels."""

from __future__ import annotations

import pytest
import torch

from vnas_monai.spaces.nas3dunet import RegionDiceLoss

EPS = 1e-6


def test_hand_computed_values():
    # one patch of 4 voxels, two regions; logits 0 -> sigmoid 0.5 everywhere
    target = torch.tensor([[[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]])  # (B=1, R=2, 4)
    logits = torch.zeros_like(target)
    dice1 = (EPS + 2 * 1.0) / (EPS + 2.0 + 2.0)  # sum(Y p) = 2 * 0.5, sum Y = 2, sum p = 4 * 0.5
    dice2 = EPS / (EPS + 0.0 + 2.0)
    loss = RegionDiceLoss()(logits, target)
    assert loss.dtype == torch.float32 and loss.ndim == 0
    assert float(loss) == pytest.approx(1 - (dice1 + dice2) / 2, rel=1e-6)
    weighted = RegionDiceLoss(weights=[3.0, 1.0])(logits, target)
    assert float(weighted) == pytest.approx(1 - (0.75 * dice1 + 0.25 * dice2), rel=1e-6)
    probs = torch.tensor([[[0.9, 0.6, 0.2, 0.0], [0.1, 0.0, 0.0, 0.3]]])
    no_sigmoid = RegionDiceLoss(sigmoid=False)(probs, target)
    d1 = (EPS + 2 * 1.5) / (EPS + 2 + 1.7)
    d2 = EPS / (EPS + 0.4)
    assert float(no_sigmoid) == pytest.approx(1 - (d1 + d2) / 2, rel=1e-6)


def test_perfect_prediction_and_batch_mean():
    target = (torch.rand(2, 3, 4, 4, 4, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    assert float(RegionDiceLoss()(100.0 * (2 * target - 1), target)) == pytest.approx(0.0, abs=1e-6)
    logits = torch.randn(2, 3, 4, 4, 4, generator=torch.Generator().manual_seed(1))
    fn = RegionDiceLoss()
    assert float(fn(logits, target)) == pytest.approx((float(fn(logits[:1], target[:1]))
                                                       + float(fn(logits[1:], target[1:]))) / 2, rel=1e-6)


def test_gradients_flow():
    logits = torch.randn(1, 3, 4, 4, 4, generator=torch.Generator().manual_seed(2), requires_grad=True)
    target = (torch.rand(1, 3, 4, 4, 4, generator=torch.Generator().manual_seed(3)) > 0.5).float()
    RegionDiceLoss()(logits, target).backward()
    grad = logits.grad
    assert grad is not None and bool(torch.isfinite(grad).all()) and float(grad.abs().sum()) > 0
    # raising the logit of a target voxel lowers the loss
    assert float(grad[target.bool()].mean()) < 0 < float(grad[~target.bool()].mean())


def test_float32_under_bf16_autocast():
    logits = torch.randn(1, 3, 8, 8, 8, generator=torch.Generator().manual_seed(4)).to(torch.bfloat16)
    target = (torch.rand(1, 3, 8, 8, 8, generator=torch.Generator().manual_seed(5)) > 0.7).float()
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        loss = RegionDiceLoss()(logits, target)
    assert loss.dtype == torch.float32
    assert float(loss) == pytest.approx(float(RegionDiceLoss()(logits.float(), target)), rel=1e-6)


def test_bad_input():
    with pytest.raises(ValueError, match=r"logits \(1, 3, 4, 4\) and target \(1, 2, 4, 4\)"):
        RegionDiceLoss()(torch.zeros(1, 3, 4, 4), torch.zeros(1, 2, 4, 4))
    with pytest.raises(ValueError, match="2 weights for 3 region channels"):
        RegionDiceLoss(weights=[1.0, 1.0])(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError, match="weights must be non-negative"):
        RegionDiceLoss(weights=[1.0, -1.0])
