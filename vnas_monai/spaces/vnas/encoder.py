"""Encoder blocks of V-NAS: the fixed stem and the searchable bottleneck cell (paper Fig. 1, Eq. 1-2).

The encoder is a ResNet-50 path laid out as in AH-Net (Liu et al., MICCAI 2018; ``monai.networks.nets.ahnet``), whose
anisotropic schedule V-NAS inherits: strides are in-plane (s, s, 1) inside the convs, and the slice axis is reduced by
a (1, 1, s) max-pool, so every candidate (2D, 3D, P3D) has the same output grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch
import torch.nn as nn
from monai.networks.layers.utils import get_act_layer, get_norm_layer

from vnas_monai.networks.blocks.mixed import MixedOp
from vnas_monai.networks.layers import ConvNormAct, MaxPool3d

from .candidates import get_candidate, op_name

__all__ = ["Stem", "BottleneckBranch", "EncoderCell"]


class Stem(nn.Module):
    """Fixed stem: conv 7x7x1 stride (2, 2, 1), then conv 1x1x3 stride 1 (paper Fig. 1, after AH-Net).

    A (1, 1, 2) max-pool then halves the slice axis, as in AH-Net, so the stem output is on an isotropically halved
    grid: (N, C, H, W, D) -> (N, F, H/2, W/2, D/2).
    """

    def __init__(self, in_channels: int, out_channels: int, act, norm, conv_impl: str = "auto") -> None:
        super().__init__()
        self.conv1 = ConvNormAct(3, in_channels, out_channels, (7, 7, 1), (2, 2, 1), act, norm, conv_impl=conv_impl)
        self.conv2 = ConvNormAct(3, out_channels, out_channels, (1, 1, 3), 1, act, norm, conv_impl=conv_impl)
        self.pool = MaxPool3d((1, 1, 2), (1, 1, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.conv2(self.conv1(x)))


class BottleneckBranch(nn.Sequential):
    """One encoder candidate: 1x1x1 reduce, X, Y, 1x1x1 expand (the residual branch of a bottleneck).

    X and Y come from the encoder table (E0: 3x3x1, 1x1x1; E1: 3x3x3, 1x1x1; E2: 3x3x1, 1x1x3). X carries the cell's
    in-plane stride (s, s, 1). The last conv has a norm and no activation: the cell adds the shortcut first.
    Shapes: (N, C, H, W, D) -> (N, 4P, H/s, W/s, D).
    """

    def __init__(
        self, op: str, in_channels: int, planes: int, expansion: int, stride: int, act, norm, conv_impl: str = "auto"
    ) -> None:
        super().__init__()
        kx, ky = get_candidate("encoder", op)
        self.reduce = ConvNormAct(3, in_channels, planes, 1, 1, act, norm, conv_impl=conv_impl)
        self.x = ConvNormAct(3, planes, planes, kx, (stride, stride, 1), act, norm, conv_impl=conv_impl)
        self.y = ConvNormAct(3, planes, planes, ky, 1, act, norm, conv_impl=conv_impl)
        self.expand = ConvNormAct(3, planes, planes * expansion, 1, 1, None, norm, conv_impl=conv_impl)


class EncoderCell(nn.Module):
    """Searchable ResNet bottleneck cell: ``act(pool_z(sum_i w_i * E_i(x)) + shortcut(x))``.

    Because the softmax weights sum to one, mixing the branches and then adding the (shared) shortcut equals the
    softmax-weighted sum of the complete candidate cells E_i(x) of Eq. 2.

    Args:
        in_channels: input channels C.
        planes: bottleneck width P; the output has ``planes * expansion`` channels.
        stride: 1 or 2; a stride-2 cell halves H, W (inside X) and D (by a (1, 1, 2) max-pool).
        ops: candidate names (all three in the supernet, the chosen one in the discrete network).
        act, norm: MONAI layer specs.
        checkpointing: recompute candidates in backward (search memory control).

    Shapes: (N, C, H, W, D) -> (N, P * expansion, H/s, W/s, D/s).
    """

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int,
        ops: Sequence[int | str],
        act,
        norm,
        expansion: int = 4,
        checkpointing: bool = False,
        conv_impl: str = "auto",
    ) -> None:
        super().__init__()
        out_channels = planes * expansion
        self.mixed = MixedOp(
            {
                op_name(o): BottleneckBranch(op_name(o), in_channels, planes, expansion, stride, act, norm, conv_impl)
                for o in ops
            },
            checkpointing=checkpointing,
        )
        self.pool: nn.Module = MaxPool3d((1, 1, stride), (1, 1, stride)) if stride > 1 else nn.Identity()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            # AH-Net's projection shortcut: in-plane strided 1x1x1 conv, slice max-pool, norm.
            self.shortcut = nn.Sequential(
                nn.Conv3d(in_channels, out_channels, 1, stride=(stride, stride, 1), bias=False),
                MaxPool3d((1, 1, stride), (1, 1, stride)) if stride > 1 else nn.Identity(),
                get_norm_layer(name=norm, spatial_dims=3, channels=out_channels) if norm is not None else nn.Identity(),
            )
        self.act = get_act_layer(name=act) if act is not None else nn.Identity()

    def forward(
        self, x: torch.Tensor, weights: Optional[torch.Tensor] = None, index: Optional[int] = None
    ) -> torch.Tensor:
        return self.act(self.pool(self.mixed(x, weights, index)) + self.shortcut(x))
