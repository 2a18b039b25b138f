"""The operations of NAS-3D-U-Net's hybrid modules (Wang, BraTS 2019, §2.4 and Table 1), from the shared factory.

Every conv op is a 3x3x3 convolution followed by GroupNorm and ReLU (:class:`vnas_monai.networks.layers.ConvNormAct`)
and keeps the channel count C:

- ``conv``: 3x3x3; ``dil_conv``: 3x3x3 with dilation 2 (padding 2);
- ``dep_conv``: depthwise separable, a depthwise 3x3x3 (``groups = C``, no norm) then a pointwise 1x1x1 with the
  norm and activation (Chollet 2017);
- ``se_conv``: ``conv`` followed by squeeze-and-excitation (MONAI's ``ChannelSELayer``, Hu et al. 2018);
- the ``d_`` ops of a DHM run the same with stride 2; the ``u_`` ops of a UHM are transposed convolutions with
  stride 2 (``output_padding = 1``), so sizes halve or double exactly;
- ``max_pool`` / ``avg_pool`` (DHM): 3x3x3 windows, stride 2, padding 1 (average over the voxels inside the image);
- ``identity`` (NHM): GroupNorm and ReLU only.

Shapes: (N, C, H, W, D) -> (N, C, H/2, W/2, D/2) for DHM ops, (N, C, 2H, 2W, 2D) for UHM ops, (N, C, H, W, D) for NHM
ops (even sizes for DHM ops).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Union

import torch
import torch.nn as nn
from monai.networks.blocks import ChannelSELayer
from monai.networks.layers.utils import get_act_layer, get_norm_layer
from monai.utils import ensure_tuple

from vnas_monai.networks.layers import ConvNormAct

from .tables import check_op

__all__ = ["DEFAULT_NORM", "DepthwiseSeparableConv", "NormAct", "SEConv", "make_op", "norm_for"]

LayerSpec = Union[str, tuple, None]

#: the paper's GroupNorm (small batches, §2.4); ``num_groups`` is lowered to a divisor of each layer's channels
DEFAULT_NORM: tuple = ("group", {"num_groups": 8})


def norm_for(norm: LayerSpec, channels: int) -> LayerSpec:
    """``norm`` for a layer of ``channels`` channels: a GroupNorm's ``num_groups`` (8 when not given) becomes the
    largest divisor of ``channels`` not above it, so one spec serves every width; other norms are returned as they
    are."""
    if norm is None:
        return None
    spec = ensure_tuple(norm)
    name, args = str(spec[0]), dict(spec[1]) if len(spec) > 1 else {}
    if name.lower() != "group":
        return norm
    wanted = max(1, int(args.get("num_groups", DEFAULT_NORM[1]["num_groups"])))
    args["num_groups"] = max(g for g in range(1, min(wanted, channels) + 1) if channels % g == 0)
    return (name, args)


class NormAct(nn.Module):
    """The NHM ``identity``: norm then activation, no convolution. Shapes: (N, C, ...) -> (N, C, ...)."""

    def __init__(self, channels: int, act: LayerSpec = "relu", norm: LayerSpec = DEFAULT_NORM) -> None:
        super().__init__()
        norm = norm_for(norm, channels)
        self.norm = get_norm_layer(name=norm, spatial_dims=3, channels=channels) if norm is not None else nn.Identity()
        self.act = get_act_layer(name=act) if act is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(x))


class DepthwiseSeparableConv(nn.Module):
    """``dep_conv`` / ``d_dep_conv`` / ``u_dep_conv``: a depthwise 3x3x3 (strided or transposed) without norm, then
    a pointwise 1x1x1 conv with norm and activation. Shapes as the module docstring."""

    def __init__(self, channels: int, stride: int = 1, transposed: bool = False, act: LayerSpec = "relu",
                 norm: LayerSpec = DEFAULT_NORM) -> None:
        super().__init__()
        self.depthwise = ConvNormAct(3, channels, channels, 3, stride, act=None, norm=None, bias=False,
                                     groups=channels, transposed=transposed)
        self.pointwise = ConvNormAct(3, channels, channels, 1, 1, act=act, norm=norm_for(norm, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class SEConv(nn.Module):
    """``se_conv`` / ``d_se_conv`` / ``u_se_conv``: conv-norm-act, then squeeze-and-excitation rescaling of its
    channels (global average pool, 1x1 reduction by ``r``, ReLU, expansion, sigmoid). Shapes as the module
    docstring."""

    def __init__(self, channels: int, stride: int = 1, transposed: bool = False, act: LayerSpec = "relu",
                 norm: LayerSpec = DEFAULT_NORM, r: int = 2) -> None:
        super().__init__()
        self.conv = ConvNormAct(3, channels, channels, 3, stride, act=act, norm=norm_for(norm, channels),
                                transposed=transposed)
        self.se = ChannelSELayer(3, channels, r=max(1, min(int(r), channels)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.se(self.conv(x))


def _conv(stride: int, dilation: int = 1, transposed: bool = False) -> Callable[..., nn.Module]:
    def build(channels: int, act: LayerSpec, norm: LayerSpec) -> nn.Module:
        return ConvNormAct(3, channels, channels, 3, stride, act=act, norm=norm_for(norm, channels),
                           dilation=dilation, transposed=transposed)

    return build


def _dep(stride: int, transposed: bool = False) -> Callable[..., nn.Module]:
    return lambda channels, act, norm: DepthwiseSeparableConv(channels, stride, transposed, act, norm)


def _se(stride: int, transposed: bool = False) -> Callable[..., nn.Module]:
    return lambda channels, act, norm: SEConv(channels, stride, transposed, act, norm)


#: (kind, op name) -> builder(channels, act, norm)
_BUILDERS: dict[tuple[str, str], Callable[..., nn.Module]] = {
    ("down", "d_conv"): _conv(2),
    ("down", "d_dil_conv"): _conv(2, dilation=2),
    ("down", "d_dep_conv"): _dep(2),
    ("down", "d_se_conv"): _se(2),
    ("down", "max_pool"): lambda channels, act, norm: nn.MaxPool3d(3, stride=2, padding=1),
    ("down", "avg_pool"): lambda channels, act, norm: nn.AvgPool3d(3, stride=2, padding=1, count_include_pad=False),
    ("up", "u_conv"): _conv(2, transposed=True),
    ("up", "u_dil_conv"): _conv(2, dilation=2, transposed=True),
    ("up", "u_dep_conv"): _dep(2, transposed=True),
    ("up", "u_se_conv"): _se(2, transposed=True),
    ("normal", "conv"): _conv(1),
    ("normal", "dil_conv"): _conv(1, dilation=2),
    ("normal", "dep_conv"): _dep(1),
    ("normal", "se_conv"): _se(1),
    ("normal", "identity"): lambda channels, act, norm: NormAct(channels, act, norm),
}


def make_op(kind: str, name: str, channels: int, act: LayerSpec = "relu", norm: LayerSpec = DEFAULT_NORM
            ) -> nn.Module:
    """The op ``name`` of the ``kind`` table (``"down"``, ``"up"`` or ``"normal"``) on ``channels`` channels.

    Raises:
        ValueError: an unknown kind or op name (the message lists the known ones), or ``channels < 1``.
    """
    check_op(kind, name)
    if int(channels) < 1:
        raise ValueError(f"an op needs at least one channel, got {channels}.")
    return _BUILDERS[(kind, name)](int(channels), act, norm)
