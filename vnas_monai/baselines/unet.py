"""MONAI ``UNet`` with MONAI's tutorial recipe.

Network and recipe of MONAI's 3D segmentation tutorials (``3d_segmentation/spleen_segmentation_3d.ipynb``,
``unet_segmentation_3d_ignite``; Kerfoot et al., "Left-ventricle quantification using residual U-Net", STACOM 2018):
``UNet(spatial_dims=3, channels=(16, 32, 64, 128, 256), strides=(2, 2, 2, 2), num_res_units=2, norm=BATCH)``,
``Adam`` at a constant learning rate 1e-3, ``DiceCELoss(to_onehot_y=True, softmax=True)``,
``RandCropByPosNegLabeld`` crops and random flips, sliding-window inference. The crops, flips and intensity
normalisation come from the plan; 4 stride-2 levels make the patch a multiple of 16.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from .common import fit_recipe
from .training import TrainedModel

__all__ = ["UNET_RECIPE", "build_unet", "train_unet"]

#: The tutorial recipe.
UNET_RECIPE: dict[str, Any] = {"optimizer": "Adam", "lr": 1e-3, "schedule": "constant", "loss": "DiceCE",
                               "channels": (16, 32, 64, 128, 256), "strides": (2, 2, 2, 2), "num_res_units": 2,
                               "norm": "batch"}
DIVISIBLE_BY = 16


def build_unet(in_channels: int, num_classes: int) -> torch.nn.Module:
    """The tutorial UNet: (B, in_channels, *roi) -> (B, num_classes, *roi), roi a multiple of 16."""
    from monai.networks.layers import Norm
    from monai.networks.nets import UNet

    r = UNET_RECIPE
    return UNet(3, in_channels, num_classes, r["channels"], r["strides"], num_res_units=r["num_res_units"],
                norm=Norm.BATCH)


def train_unet(
    plan: Mapping[str, Any],
    splits: Mapping[str, Sequence[Mapping[str, Any]]],
    budget_s: float,
    work_dir: str | os.PathLike,
    seed: int = 0,
    max_steps: int | None = None,
) -> TrainedModel:
    """Train the tutorial UNet within ``budget_s`` seconds (benchmark method ``unet``)."""
    from monai.losses import DiceCELoss

    torch.manual_seed(seed)
    return fit_recipe("unet", build_unet(1, len(plan["class_names"])), DiceCELoss(to_onehot_y=True, softmax=True),
                      UNET_RECIPE, DIVISIBLE_BY, plan, splits, budget_s, work_dir, seed, max_steps)
