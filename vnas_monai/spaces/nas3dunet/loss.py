"""The NAS-3D-U-Net loss: the weighted multi-class soft Dice over region channels (Wang, BraTS 2019, §3.2, Eq. 3).

With ``Ŷ = sigmoid(logits)`` and ``Y`` the 0/1 region targets (ET, TC, WT: :mod:`vnas_monai.data.regions`)::

    L = 1 - sum_h w_h (ε + 2 Σ Y_h Ŷ_h) / (ε + Σ Y_h + Σ Ŷ_h),     ε = 1e-6 (§3.3)

the sums running over the patch's voxels. The paper's weights are w_h = 1/3 for its three regions (the "weighted"
Dice of its refs. [34, 35] with equal weights), the default here (1/R for R regions); other weights are
normalised to sum to 1. The paper's batch holds one patch; a batch of B patches gives the mean of the B losses.

The loss is computed in float32 whatever the autocast region it is called in (bf16 logits lose digits in the
sums of a 128^3 patch).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["RegionDiceLoss"]


class RegionDiceLoss(torch.nn.Module):
    """Eq. 3: ``(B, R, *spatial)`` logits, ``(B, R, *spatial)`` 0/1 targets -> scalar loss.

    Args:
        weights: one weight per region (normalised to sum 1); ``None``: 1/R each (the paper).
        epsilon: ε of Eq. 3 (1e-6 in the paper).
        sigmoid: apply the sigmoid to the input (``False``: the input already holds probabilities).
    """

    def __init__(self, weights: Sequence[float] | None = None, epsilon: float = 1e-6, sigmoid: bool = True) -> None:
        super().__init__()
        if weights is not None:
            w = torch.as_tensor([float(v) for v in weights], dtype=torch.float32)
            if w.ndim != 1 or not len(w) or bool((w < 0).any()) or float(w.sum()) <= 0 or not bool(w.isfinite().all()):
                raise ValueError(f"RegionDiceLoss: weights must be non-negative finite values, not all 0, got "
                                 f"{list(weights)}.")
            self.register_buffer("weights", w / w.sum(), persistent=False)
        else:
            self.weights = None
        if not float(epsilon) > 0:
            raise ValueError(f"RegionDiceLoss: epsilon must be > 0, got {epsilon}.")
        self.epsilon = float(epsilon)
        self.sigmoid = bool(sigmoid)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.shape != target.shape or logits.ndim < 3:
            raise ValueError(f"RegionDiceLoss: logits {tuple(logits.shape)} and target {tuple(target.shape)} must both "
                             f"be (B, R, *spatial) with the same shape (targets: one 0/1 channel per region).")
        regions = logits.shape[1]
        if self.weights is not None and len(self.weights) != regions:
            raise ValueError(f"RegionDiceLoss: {len(self.weights)} weights for {regions} region channels.")
        with torch.autocast(device_type=logits.device.type, enabled=False):
            x = logits.float()
            p = torch.sigmoid(x) if self.sigmoid else x
            y = target.float()
            dims = tuple(range(2, x.ndim))
            dice = (self.epsilon + 2 * (p * y).sum(dims)) / (self.epsilon + y.sum(dims) + p.sum(dims))  # (B, R)
            w = self.weights if self.weights is not None else torch.full((regions,), 1.0 / regions)
            return (1.0 - (dice * w.to(dice.device)).sum(1)).mean()
