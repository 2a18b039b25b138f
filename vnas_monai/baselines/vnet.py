"""MONAI ``VNet`` (Milletari et al.) with its paper's recipe.

Network: Milletari, Navab and Ahmadi, "V-Net: fully convolutional neural networks for volumetric medical image
segmentation", 3DV 2016, as MONAI builds it (``monai.networks.nets.VNet``, adapted from the authors' Caffe code):
residual stages of 1, 2, 3, 3 (and 3 at the bottom) 5x5x5 convolutions with 16, 32, 64, 128, 256 channels, 2x2x2
stride-2 convolutions down and transposed convolutions up, ELU, batch norm, MONAI's default dropout (0.5 in the two
deepest stages). Four down-samplings: the patch is a multiple of 16 (at the hippocampus' median shape 35x50x36:
32x48x32).

Recipe: the paper's, as MONAI has no VNet tutorial: SGD with momentum 0.99 at learning rate 1e-4, the Dice loss
with squared denominators (``DiceLoss(squared_pred=True)``: Milletari's 2 sum(p g) / (sum p^2 + sum g^2)), on the
foreground classes (the paper's loss is the foreground Dice of a 2-class softmax; ``include_background=False``),
mini-batches of 2 volumes, random crops and flips from the plan (the paper's B-spline deformations and histogram
matching are left out, as for the other baselines). The paper divides the learning rate by 10 every 25K iterations;
a 30-minute CPU budget runs about 2K steps (0.8 s per step), so no decay would come within it and the schedule is
constant. Precision: bfloat16 autocast on CPU, 2.5x faster here (2.0 -> 0.8 s per step of 2 x 32x48x32, fp32
weights, 1 thread).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from .common import fit_recipe
from .training import TrainedModel

__all__ = ["VNET_RECIPE", "build_vnet", "train_vnet"]

#: The paper's recipe (constant learning rate: its first decay comes after the budget); precision ``auto``: bf16 where
#: the CPU has bf16 matrix hardware (emulated bf16 on other CPUs made a VNet step minutes long), else float32.
VNET_RECIPE: dict[str, Any] = {"optimizer": "SGD", "lr": 1e-4, "momentum": 0.99, "schedule": "constant",
                               "loss": "Dice (squared, foreground)", "batch_size": 2, "num_samples": 1,
                               "precision": "auto"}
DIVISIBLE_BY = 16


def build_vnet(in_channels: int, num_classes: int) -> torch.nn.Module:
    """MONAI's VNet: (B, in_channels, *roi) -> (B, num_classes, *roi) logits, roi a multiple of 16 (``in_channels``
    must divide 16)."""
    from monai.networks.nets import VNet

    return VNet(spatial_dims=3, in_channels=in_channels, out_channels=num_classes)


def train_vnet(
    plan: Mapping[str, Any],
    splits: Mapping[str, Sequence[Mapping[str, Any]]],
    budget_s: float,
    work_dir: str | os.PathLike,
    seed: int = 0,
    max_steps: int | None = None,
) -> TrainedModel:
    """Train VNet with the paper's recipe within ``budget_s`` seconds (benchmark method ``vnet``)."""
    from monai.losses import DiceLoss

    torch.manual_seed(seed)
    loss = DiceLoss(include_background=False, to_onehot_y=True, softmax=True, squared_pred=True)
    return fit_recipe("vnet", build_vnet(1, len(plan["class_names"])), loss, VNET_RECIPE, DIVISIBLE_BY, plan,
                      splits, budget_s, work_dir, seed, max_steps)
