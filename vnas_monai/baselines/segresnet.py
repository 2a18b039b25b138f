"""MONAI ``SegResNet`` with its MONAI recipe.

Network: Myronenko, "3D MRI brain tumor segmentation using autoencoder regularization" (BrainLes 2018), as MONAI's
BraTS tutorial (``3d_segmentation/brats_segmentation_3d.ipynb``) builds it: ``SegResNet(blocks_down=(1, 2, 2, 4),
blocks_up=(1, 1, 1), init_filters=16, dropout_prob=0.2)`` (3 down-samplings: the patch is a multiple of 8).
Recipe: Auto3DSeg's ``segresnet`` algorithm: ``AdamW`` lr 2e-4, weight decay 1e-5, cosine decay (stretched over the
budget), ``DiceCELoss`` with softmax; crops and flips from the plan, plus the tutorial's intensity scaling and
shifting (here ``RandScaleIntensityd`` and noise / contrast). Batch: 2 patches from 2 cases (the tutorial's batch is
1; a step of 8 patches of 32x48x40 takes 7 s on one CPU thread, too few steps for a 30-minute budget); fp32
(bfloat16 autocast does not speed up its group-norm-bound step here: 5.9 s vs 6.0 s).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from .common import fit_recipe
from .training import TrainedModel

__all__ = ["SEGRESNET_RECIPE", "build_segresnet", "train_segresnet"]

SEGRESNET_RECIPE: dict[str, Any] = {"optimizer": "AdamW", "lr": 2e-4, "weight_decay": 1e-5, "schedule": "cosine",
                                    "loss": "DiceCE", "init_filters": 16, "blocks_down": (1, 2, 2, 4),
                                    "blocks_up": (1, 1, 1), "dropout_prob": 0.2, "batch_size": 2, "num_samples": 1}
DIVISIBLE_BY = 8


def build_segresnet(in_channels: int, num_classes: int) -> torch.nn.Module:
    """(B, in_channels, *roi) -> (B, num_classes, *roi), roi a multiple of 8."""
    from monai.networks.nets import SegResNet

    r = SEGRESNET_RECIPE
    return SegResNet(3, init_filters=r["init_filters"], in_channels=in_channels, out_channels=num_classes,
                     dropout_prob=r["dropout_prob"], blocks_down=r["blocks_down"], blocks_up=r["blocks_up"])


def train_segresnet(
    plan: Mapping[str, Any],
    splits: Mapping[str, Sequence[Mapping[str, Any]]],
    budget_s: float,
    work_dir: str | os.PathLike,
    seed: int = 0,
    max_steps: int | None = None,
) -> TrainedModel:
    """Train SegResNet with its MONAI recipe within ``budget_s`` seconds (benchmark method ``segresnet``)."""
    from monai.losses import DiceCELoss

    torch.manual_seed(seed)
    model = build_segresnet(1, len(plan["class_names"]))
    return fit_recipe("segresnet", model, DiceCELoss(to_onehot_y=True, softmax=True), SEGRESNET_RECIPE, DIVISIBLE_BY,
                      plan, splits, budget_s, work_dir, seed, max_steps, intensity=True)
