"""The one conv-norm-act factory behind every V-NAS layer, parametrised by kernel shape.

Kernel shapes are (x, y, z) with z the slice axis, matching MONAI's (N, C, H, W, D) layout: a 2D layer is (3, 3, 1),
a 3D layer (3, 3, 3), a pseudo-3D (P3D) pair (3, 3, 1) then (1, 1, 3). Padding is derived from the kernel ("same"
for odd kernels), never passed by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.layers.utils import get_act_layer, get_norm_layer
from monai.utils import StrEnum

__all__ = ["ConvImpl", "SliceConv3d", "ConvNormAct", "same_padding", "as_triple"]

LayerSpec = Union[str, tuple, None]


class ConvImpl(StrEnum):
    """How a (k, k, 1) convolution is executed; every form computes the same function with the same weights.

    - ``auto``: the measured default for the device (see ``benchmarks/``): ``conv3d`` today.
    - ``conv3d``: ``torch.nn.functional.conv3d``.
    - ``slices``: a ``conv2d`` over slices, with the depth folded into the batch (bit-identical to ``conv3d``).
    """

    AUTO = "auto"
    CONV3D = "conv3d"
    SLICES = "slices"


def as_triple(value: int | Sequence[int], name: str = "kernel_size") -> tuple[int, int, int]:
    if isinstance(value, int):
        return (value, value, value)
    value = tuple(int(v) for v in value)
    if len(value) != 3:
        raise ValueError(f"{name} must be an int or 3 ints (x, y, z), got {value}.")
    return value  # type: ignore[return-value]


def same_padding(kernel_size: Sequence[int]) -> tuple[int, int, int]:
    """'Same' padding of an odd kernel; even kernels are refused rather than silently shifting the output."""
    if any(k % 2 == 0 for k in kernel_size):
        raise ValueError(f"kernel_size {tuple(kernel_size)} must be odd in every axis for 'same' padding.")
    return tuple((k - 1) // 2 for k in kernel_size)  # type: ignore[return-value]


class SliceConv3d(nn.Conv3d):
    """``nn.Conv3d`` (same parameters, same ``state_dict``) that may run an in-plane kernel as a 2D conv over slices.

    A kernel and stride of the form (kx, ky, 1) never mixes slices, so it equals ``conv2d`` applied to each slice:
    (N, C, H, W, D) -> (N*D, C, H, W) -> conv2d -> (N, C', H', W', D). Which form runs is ``impl`` (a ``ConvImpl``).
    """

    def __init__(self, *args, impl: str = ConvImpl.AUTO, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.impl = str(ConvImpl(impl))
        self.in_plane = self.kernel_size[2] == 1 and self.stride[2] == 1 and self.padding[2] == 0 and self.groups == 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.impl == "slices" and self.in_plane:
            n, c, h, w, d = x.shape
            y = x.permute(0, 4, 1, 2, 3).reshape(n * d, c, h, w)
            y = F.conv2d(y, self.weight[..., 0], self.bias, self.stride[:2], self.padding[:2], self.dilation[:2])
            return y.reshape(n, d, y.shape[1], y.shape[2], y.shape[3]).permute(0, 2, 3, 4, 1)
        return F.conv3d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class ConvNormAct(nn.Module):
    """Conv + norm + activation with the kernel shape as the only thing that makes it 2D, 3D or one half of P3D.

    Args:
        spatial_dims: must be 3 (V-NAS chooses between in-plane and volumetric kernels of 3D images).
        in_channels: input channels C.
        out_channels: output channels C'.
        kernel_size: (x, y, z) kernel, e.g. (3, 3, 1), (3, 3, 3), (1, 1, 3); an int means a cube.
        stride: (x, y, z) stride.
        act: MONAI activation spec (``"relu"``, ``("leakyrelu", {"negative_slope": 0.01})``) or None.
        norm: MONAI norm spec (``"batch"``, ``("instance", {"affine": True})``, ``("group", {"num_groups": 8})``)
            or None.
        preact: norm and activation before the conv (DenseNet / AH-Net decoder order) instead of after (ResNet).
        bias: conv bias; by default only when there is no norm after the conv.
        conv_impl: a ``ConvImpl`` for in-plane kernels.

    Shapes: (N, C, H, W, D) -> (N, C', ceil(H/sx), ceil(W/sy), ceil(D/sz)).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int] = 3,
        stride: int | Sequence[int] = 1,
        act: LayerSpec = "relu",
        norm: LayerSpec = "batch",
        preact: bool = False,
        bias: bool | None = None,
        conv_impl: str = ConvImpl.AUTO,
    ) -> None:
        super().__init__()
        if spatial_dims != 3:
            raise ValueError(f"spatial_dims must be 3 for V-NAS layers (x, y, z kernels), got {spatial_dims}.")
        kernel = as_triple(kernel_size)
        stride = as_triple(stride, "stride")
        if bias is None:
            bias = norm is None or preact
        self.preact = bool(preact)
        self.conv = SliceConv3d(
            in_channels, out_channels, kernel, stride=stride, padding=same_padding(kernel), bias=bias, impl=conv_impl
        )
        norm_ch = in_channels if preact else out_channels
        self.norm = get_norm_layer(name=norm, spatial_dims=3, channels=norm_ch) if norm is not None else nn.Identity()
        self.act = get_act_layer(name=act) if act is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # An explicit order: TorchScript shares compiled code between Sequentials holding the same children in a
        # different order, which silently ran pre-activation layers post-activation.
        if self.preact:
            return self.conv(self.act(self.norm(x)))
        return self.act(self.norm(self.conv(x)))
