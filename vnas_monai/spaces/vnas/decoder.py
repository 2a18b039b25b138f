"""Decoder blocks of V-NAS: searchable dense blocks, transitions and pyramid volumetric pooling (paper Fig. 1, Eq. 3-4).

The decoder follows AH-Net's (``monai.networks.nets.ahnet``: ``DenseBlock``, ``UpTransition``, ``Projection``,
``PSP``, ``Final``) with one difference the paper states: a dense layer's two convs [X; Y] are applied in sequence
(P3D is 3x3x1 *followed by* 1x1x3), where AH-Net's ``Pseudo3DLayer`` sums the 3x3x1 and 1x1x3 outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from vnas_monai.networks.blocks.mixed import MixedOp
from vnas_monai.networks.layers import ConvNormAct, dense_grad, max_pool3d

from .candidates import get_candidate, op_name

__all__ = ["DenseLayer", "DenseBranch", "DecoderCell", "Transition", "PVP", "FinalHead", "FullResolutionRefine"]


def _upsample(mode: str) -> nn.Upsample:
    return nn.Upsample(scale_factor=2, mode=mode, align_corners=False if mode == "trilinear" else None)


class DenseLayer(nn.Sequential):
    """Pre-activation dense layer: 1x1x1 bottleneck to ``bn_size * growth``, then X and Y (norm-act-conv each).

    Shapes: (N, C, H, W, D) -> (N, growth, H, W, D) (the new features only; the block concatenates).
    """

    def __init__(self, op: str, in_channels: int, growth: int, bn_size: int, act, norm, conv_impl: str = "auto"):
        super().__init__()
        kx, ky = get_candidate("decoder", op)
        width = bn_size * growth
        self.bottleneck = ConvNormAct(3, in_channels, width, 1, 1, act, norm, preact=True, conv_impl=conv_impl)
        self.x = ConvNormAct(3, width, growth, kx, 1, act, norm, preact=True, conv_impl=conv_impl)
        self.y = ConvNormAct(3, growth, growth, ky, 1, act, norm, preact=True, conv_impl=conv_impl)


class DenseBranch(nn.Module):
    """One decoder candidate D_i: ``num_layers`` dense layers of the same kind.

    Returns only the features the block adds (``num_layers * growth`` channels); ``DecoderCell`` concatenates the
    input once, which equals mixing the candidates' full outputs since the mixing weights sum to one.
    Shapes: (N, C, H, W, D) -> (N, num_layers * growth, H, W, D).
    """

    def __init__(
        self, op: str, in_channels: int, num_layers: int, growth: int, bn_size: int, act, norm, conv_impl: str = "auto"
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            [DenseLayer(op, in_channels + i * growth, growth, bn_size, act, norm, conv_impl) for i in range(num_layers)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, 1)))
        return torch.cat(features[1:], 1)


class DecoderCell(nn.Module):
    """Searchable dense block: ``cat(x, sum_i w_i * D_i(x))`` (Eq. 4).

    Shapes: (N, C, H, W, D) -> (N, C + num_layers * growth, H, W, D).
    """

    def __init__(
        self,
        in_channels: int,
        ops: Sequence[int | str],
        act,
        norm,
        num_layers: int = 3,
        growth: int = 20,
        bn_size: int = 4,
        checkpointing: bool = False,
        conv_impl: str = "auto",
    ) -> None:
        super().__init__()
        self.out_channels = in_channels + num_layers * growth
        self.mixed = MixedOp(
            {
                op_name(o): DenseBranch(op_name(o), in_channels, num_layers, growth, bn_size, act, norm, conv_impl)
                for o in ops
            },
            checkpointing=checkpointing,
        )

    def forward(
        self, x: torch.Tensor, weights: Optional[torch.Tensor] = None, index: Optional[int] = None
    ) -> torch.Tensor:
        return torch.cat([x, self.mixed(x, weights, index)], 1)


class Transition(nn.Sequential):
    """AH-Net ``UpTransition`` / ``Projection``: norm-act-1x1x1 conv, then (optionally) x2 upsampling.

    ``upsample``: ``"transpose"`` (learned 2x2x2 transposed conv, AH-Net's default), ``"trilinear"``,
    ``"nearest"``, or None for a projection at the same resolution.
    Shapes: (N, C, H, W, D) -> (N, C', 2H, 2W, 2D) (or (N, C', H, W, D) without upsampling).
    """

    def __init__(self, in_channels: int, out_channels: int, act, norm, upsample: Optional[str] = "transpose"):
        super().__init__()
        self.proj = ConvNormAct(3, in_channels, out_channels, 1, 1, act, norm, preact=True, bias=False)
        if upsample == "transpose":
            self.up = nn.ConvTranspose3d(out_channels, out_channels, 2, stride=2, bias=False)
        elif upsample in ("trilinear", "nearest"):
            self.up = _upsample(upsample)
        elif upsample is not None:
            raise ValueError(f"upsample_mode must be 'transpose', 'trilinear' or 'nearest', got {upsample!r}.")


class PVP(nn.Module):
    """Pyramid volumetric pooling (AH-Net's PSP block): in-plane max-pools at several scales, each projected to one
    channel by a 1x1x1 conv and resized back, then concatenated.

    Pool windows larger than the feature map are clipped to it (global in-plane pooling), so any patch works. A
    window that is a multiple of the previous one pools the previous pool's output (the maximum over a block of
    blocks is the maximum over the block): the same values, from a map 64x smaller than the input for the second
    of the (8, 16, 32, 64) windows. Bf16 inference of (2, 31, 32, 32, 32): 1.9 ms against 6.7 ms (1 thread).
    Shapes: (N, C, H, W, D) -> (N, len(pool_sizes), H, W, D).
    """

    def __init__(self, in_channels: int, pool_sizes: Sequence[int] = (8, 16, 32, 64)) -> None:
        super().__init__()
        self.pool_sizes = [int(s) for s in pool_sizes]
        self.proj = nn.ModuleList([nn.Conv3d(in_channels, 1, 1) for _ in self.pool_sizes])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w, d = x.shape[2], x.shape[3], x.shape[4]
        outs: list[torch.Tensor] = []
        pooled, kh, kw = x, 1, 1  # the last pool's output and its window
        for i, proj in enumerate(self.proj):
            size = self.pool_sizes[i]
            k = [min(size, h), min(size, w), 1]
            if k[0] % kh == 0 and k[1] % kw == 0:
                if k[0] > kh or k[1] > kw:  # else the same window as the last one (both clipped to the map)
                    pooled = max_pool3d(pooled, [k[0] // kh, k[1] // kw, 1], [k[0] // kh, k[1] // kw, 1])
            else:
                pooled = max_pool3d(x, k, k)
            kh, kw = k[0], k[1]
            y = proj(pooled)
            outs.append(F.interpolate(y, size=[h, w, d], mode="trilinear", align_corners=False))
        return torch.cat(outs, 1)


class FinalHead(nn.Sequential):
    """AH-Net ``Final``: norm-act-conv 3x3x1 to the class logits, then x2 upsampling to the input grid.

    Shapes: (N, C, H, W, D) -> (N, out_channels, 2H, 2W, 2D).
    """

    def __init__(self, in_channels: int, out_channels: int, act, norm, upsample: str = "transpose") -> None:
        super().__init__()
        self.conv = ConvNormAct(3, in_channels, out_channels, (3, 3, 1), 1, act, norm, preact=True, bias=True)
        if upsample == "transpose":
            self.up = nn.ConvTranspose3d(out_channels, out_channels, 2, stride=2)
        else:
            self.up = _upsample(upsample)


class FullResolutionRefine(nn.Module):
    """A light full-resolution stage after the head: the decoder ends at 1/2 of the input grid (the stem's stride),
    and the head only upsamples logits, so a structure a few voxels thick (hippocampus at 1 mm) gets blocky edges.

    Two 3x3x3 conv-norm-act layers see the image at its own grid (``channels`` features of it) with the upsampled
    logits and add a correction to those logits, as a U-Net's top level does. The last 1x1x1 conv starts at zero, so
    the network starts as the paper's head. Not part of the search space: every architecture gets the same stage.

    With ``feature_channels`` > 0 it also sees the decoder's last features (the head's input, at 1/2 of the grid),
    lifted to the input grid by a x2 transposed convolution to ``channels`` features: a U-Net's top-level skip, so
    that the correction draws on more than the upsampled logits.

    Shapes: image (N, C, H, W, D), logits (N, K, H, W, D), features (N, feature_channels, H/2, W/2, D/2)
    -> (N, K, H, W, D).
    """

    def __init__(self, in_channels: int, out_channels: int, channels: int, act, norm, conv_impl: str = "auto",
                 feature_channels: int = 0):
        super().__init__()
        self.image = ConvNormAct(3, in_channels, channels, 3, 1, act, norm, conv_impl=conv_impl)
        self.lift = nn.ConvTranspose3d(feature_channels, channels, 2, stride=2) if feature_channels else None
        fused = channels * (2 if feature_channels else 1) + out_channels
        self.fuse = ConvNormAct(3, fused, channels, 3, 1, act, norm, conv_impl=conv_impl)
        self.out = nn.Conv3d(channels, out_channels, 1)

    def reset_out(self) -> None:
        """Zero the correction (called after the backbone's weight init)."""
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, image: torch.Tensor, logits: torch.Tensor, features: Optional[torch.Tensor] = None
                ) -> torch.Tensor:
        own = self.image(image)
        parts = [dense_grad(own), logits.to(own.dtype)]  # the cat's strided gradient slows the ReLU's backward
        if self.lift is not None and features is not None:
            parts.insert(1, self.lift(features).to(own.dtype))
        correction = self.out(self.fuse(torch.cat(parts, 1)))
        return logits + correction.to(logits.dtype)
