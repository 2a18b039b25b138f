"""The 3D U-Net of Çiçek et al. with the recipe of MONAI's BasicUNet tutorial.

Network: Çiçek, Abdulkadir, Lienkamp, Brox and Ronneberger, "3D U-Net: learning dense volumetric segmentation from
sparse annotation", MICCAI 2016 (the baseline of the NAS-3D-U-Net and V-NAS papers). Four resolution levels: in
the analysis path two 3x3x3 convolutions per level, each followed by batch norm and ReLU, the first one to half the
level's channels (32 -> 64, 64 -> 128, 128 -> 256, 256 -> 512), then 2x2x2 max pooling (stride 2; three poolings);
in the synthesis path a 2x2x2 transposed convolution (stride 2, channels kept), concatenation with the analysis
level's output and two 3x3x3 convolutions + BN + ReLU to that level's channels; a 1x1x1 convolution to the classes.
19.07 M parameters at 3 classes (the paper counts 19,069,955). Built here from MONAI's ``Convolution`` block
(conv + BN + ReLU), not from a MONAI network class, because neither follows the paper: ``BasicUNet`` is documented
as Falk et al., Nature Methods 2019 (five levels and four poolings, channels doubled between levels rather than
within them, the last up-sampling to 32 channels; instance norm and LeakyReLU by default) and ``UNet`` down-samples
with one strided (or residual) convolution per level instead of two convolutions and max pooling. The one departure
from the paper: the convolutions are zero-padded ("same"), as in every MONAI U-Net, so the output matches the input
and the patches tile in sliding-window inference (the paper's unpadded 132x132x116 -> 44x44x28 needs overlap-tile).
Three poolings: the patch is a multiple of 8 (at the hippocampus' median shape 35x50x36: 32x48x40).

Recipe: MONAI's BasicUNet tutorial, the COVID-19-20 challenge baseline
(``Project-MONAI/tutorials/3d_segmentation/challenge_baseline/run_net.py``): ``Adam`` at a constant learning rate
1e-4, Dice + cross-entropy (``DiceLoss(to_onehot_y=True, softmax=True) + CrossEntropyLoss()``, i.e. MONAI's
``DiceCELoss``), batch 2, ``RandCropByPosNegLabeld`` crops and flips (here the plan's crops, flips and intensity
normalisation), mixed precision (``amp=True``). Precision ``auto``: bfloat16 autocast on a CPU with bf16 matrix
hardware (AMX), 3.5x faster there (4.8 -> 1.36 s per step of 2 x 32x48x40, fp32 weights, 1 thread); float32 on
other CPUs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from .common import fit_recipe
from .training import TrainedModel

__all__ = ["UNET3D_RECIPE", "UNet3D", "build_unet3d", "train_unet3d"]

#: The tutorial's recipe and the paper's network.
UNET3D_RECIPE: dict[str, Any] = {"optimizer": "Adam", "lr": 1e-4, "schedule": "constant", "loss": "DiceCE",
                                 "channels": (64, 128, 256, 512), "norm": "batch", "batch_size": 2, "num_samples": 1,
                                 "precision": "auto"}
DIVISIBLE_BY = 8


def _conv_bn_relu(in_channels: int, out_channels: int) -> nn.Module:
    from monai.networks.blocks import Convolution
    from monai.networks.layers import Act, Norm

    # no bias: batch norm follows (the bias would be cancelled by its mean)
    return Convolution(3, in_channels, out_channels, kernel_size=3, act=Act.RELU, norm=Norm.BATCH, bias=False)


class UNet3D(nn.Module):
    """Çiçek et al.'s 3D U-Net: (B, in_channels, *roi) -> (B, num_classes, *roi) logits, roi a multiple of
    ``2 ** (len(channels) - 1)``.

    Args:
        in_channels: input channels.
        num_classes: output channels (logits).
        channels: each level's output channels, top to bottom (the paper: 64, 128, 256, 512); a level's first
            analysis convolution has half of them.
    """

    def __init__(self, in_channels: int, num_classes: int, channels: Sequence[int] = (64, 128, 256, 512)) -> None:
        super().__init__()
        channels = [int(c) for c in channels]
        if len(channels) < 2 or min(channels) < 2:
            raise ValueError(f"channels must give at least 2 levels of >= 2 channels, got {channels}.")
        self.encoder = nn.ModuleList()
        prev = in_channels
        for c in channels:
            self.encoder.append(nn.Sequential(_conv_bn_relu(prev, c // 2), _conv_bn_relu(c // 2, c)))
            prev = c
        self.pool = nn.MaxPool3d(2, stride=2)
        self.upconv = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for skip in reversed(channels[:-1]):
            self.upconv.append(nn.ConvTranspose3d(prev, prev, 2, stride=2))
            self.decoder.append(nn.Sequential(_conv_bn_relu(prev + skip, skip), _conv_bn_relu(skip, skip)))
            prev = skip
        self.head = nn.Conv3d(prev, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, level in enumerate(self.encoder):
            x = level(x if i == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for upconv, level in zip(self.upconv, self.decoder):
            x = level(torch.cat([upconv(x), skips.pop()], dim=1))
        return self.head(x)


def build_unet3d(in_channels: int, num_classes: int) -> UNet3D:
    """The paper's 3D U-Net: (B, in_channels, *roi) -> (B, num_classes, *roi), roi a multiple of 8."""
    return UNet3D(in_channels, num_classes, UNET3D_RECIPE["channels"])


def train_unet3d(
    plan: Mapping[str, Any],
    splits: Mapping[str, Sequence[Mapping[str, Any]]],
    budget_s: float,
    work_dir: str | os.PathLike,
    seed: int = 0,
    max_steps: int | None = None,
) -> TrainedModel:
    """Train the 3D U-Net with the tutorial recipe within ``budget_s`` seconds (benchmark method ``unet3d``)."""
    from monai.losses import DiceCELoss

    torch.manual_seed(seed)
    return fit_recipe("unet3d", build_unet3d(1, len(plan["class_names"])),
                      DiceCELoss(to_onehot_y=True, softmax=True), UNET3D_RECIPE, DIVISIBLE_BY, plan, splits,
                      budget_s, work_dir, seed, max_steps)
