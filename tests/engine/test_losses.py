"""The bundles' DiceCELoss: MONAI's loss, bit for bit, without the Dice term's work when its weight is 0."""

from __future__ import annotations

import pytest
import torch
from monai.losses import DiceCELoss as MonaiDiceCELoss

from vnas_monai.engine import DiceCELoss


@pytest.mark.parametrize("lambda_dice", [0.0, 1.0])
@pytest.mark.parametrize("one_hot", [False, True])
def test_same_value_and_gradient_as_monai(lambda_dice, one_hot):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 8, 6, 5, generator=g)
    labels = torch.randint(0, 3, (2, 1, 8, 6, 5), generator=g)
    target = torch.nn.functional.one_hot(labels[:, 0], 3).permute(0, 4, 1, 2, 3).float() if one_hot else labels
    kw = dict(to_onehot_y=not one_hot, softmax=True, lambda_dice=lambda_dice)
    values, grads = [], []
    for cls in (MonaiDiceCELoss, DiceCELoss):
        x = logits.clone().requires_grad_(True)
        loss = cls(**kw)(x, target)
        loss.backward()
        values.append(loss.detach())
        grads.append(x.grad)
    assert torch.equal(values[0], values[1]) and torch.equal(grads[0], grads[1])


def test_cross_entropy_only_skips_the_dice_term(monkeypatch):
    loss = DiceCELoss(to_onehot_y=True, softmax=True, lambda_dice=0.0)
    monkeypatch.setattr(loss.dice, "forward", lambda *a: pytest.fail("the Dice term was computed with lambda_dice=0"))
    assert torch.isfinite(loss(torch.randn(2, 2, 4, 4, 4), torch.randint(0, 2, (2, 1, 4, 4, 4))))


def test_shape_errors_are_monai_s():
    with pytest.raises(ValueError, match="number of dimensions"):
        DiceCELoss(to_onehot_y=True, lambda_dice=0.0)(torch.randn(2, 2, 4, 4, 4), torch.zeros(2, 4, 4, 4))
