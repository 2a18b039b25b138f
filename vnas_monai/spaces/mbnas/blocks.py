"""The four MB-NAS blocks (Bosma et al., SPIE 2022, Fig. 1c), 2D or 3D, as a named table (:data:`BLOCKS`).

Every block maps ``(B, in_channels, *spatial) -> (B, out_channels, *spatial)`` (stride 1, "same" padding derived
from the kernel by :func:`vnas_monai.networks.layers.same_padding`) and takes MONAI's arguments: ``spatial_dims``
(2 or 3), ``in_channels``, ``out_channels``, ``kernel_size`` (an odd int), ``act`` and ``norm`` (a name or
``(name, kwargs)``). Their conv-norm-act unit is :func:`conv_norm_act`, a MONAI ``Convolution`` (the project's
``ConvNormAct`` is 3D only: it chooses kernel shapes within 3D images).

* ``vgg``: two conv-norm-act (Simonyan & Zisserman 2015; U-Net's block);
* ``residual``: MONAI's ``UnetResBlock``, ResNet's basic block (He et al. 2016): conv-norm-act, conv-norm, plus the
  input (through a 1x1 conv-norm when the channels change), then the activation;
* ``dense``: a dense block (Huang et al. 2017): :data:`DENSE_LAYERS` conv-norm-act layers of ``out_channels // 2``
  (at least 1) channels, each reading the concatenation of the block's input and every earlier layer, then a 1x1
  conv-norm-act transition to ``out_channels``;
* ``inception``: an Inception block (Szegedy et al. 2017): four branches concatenated to ``out_channels`` (at
  least 4): 1x1; 1x1 -> k; 1x1 -> k -> k (a larger receptive field); 3-max-pool (stride 1) -> 1x1 (max, not
  Inception-v4's average pooling: torch's CPU ``avg_pool3d`` refuses inputs under 3 voxels along an axis even with
  padding, which the coarse levels of small patches have).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
from monai.networks.blocks import Convolution, UnetResBlock
from monai.networks.layers.factories import Pool

from vnas_monai.networks.layers import same_padding

from .encoding import BLOCK_TYPES

__all__ = ["BLOCKS", "DENSE_LAYERS", "DenseBlock", "InceptionBlock", "ResidualBlock", "VGGBlock", "conv_norm_act",
           "get_block"]

#: layers of a dense block
DENSE_LAYERS = 3


def conv_norm_act(spatial_dims: int, in_channels: int, out_channels: int, kernel_size: int = 3,
                  act: str | tuple | None = "relu", norm: str | tuple | None = "batch") -> Convolution:
    """Conv (stride 1, "same" padding from the kernel, bias only without a norm), norm, activation (MONAI's
    ``Convolution``, order NDA); ``act`` / ``norm`` ``None`` leave them out."""
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
    kernel = (int(kernel_size),) * spatial_dims
    return Convolution(spatial_dims, in_channels, out_channels, strides=1, kernel_size=kernel, act=act, norm=norm,
                       bias=norm is None, padding=same_padding(kernel))


class VGGBlock(nn.Sequential):
    """Two conv-norm-act of size ``kernel_size`` (U-Net's block)."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, kernel_size: int = 3,
                 act: str | tuple | None = "relu", norm: str | tuple | None = "batch") -> None:
        super().__init__(conv_norm_act(spatial_dims, in_channels, out_channels, kernel_size, act, norm),
                         conv_norm_act(spatial_dims, out_channels, out_channels, kernel_size, act, norm))


class ResidualBlock(UnetResBlock):
    """ResNet's basic block: MONAI's ``UnetResBlock`` at stride 1, in this module's argument names.

    Raises:
        ValueError: ``norm=None`` (the block normalises both branches) or ``act=None``.
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, kernel_size: int = 3,
                 act: str | tuple | None = "relu", norm: str | tuple | None = "batch") -> None:
        if norm is None or act is None:
            raise ValueError("the residual block (MONAI UnetResBlock) needs a norm and an activation; got "
                             f"norm={norm!r}, act={act!r}.")
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
        super().__init__(spatial_dims, in_channels, out_channels, kernel_size=int(kernel_size), stride=1,
                         norm_name=norm, act_name=act)


class DenseBlock(nn.Module):
    """A dense block of :data:`DENSE_LAYERS` layers of growth ``max(1, out_channels // 2)`` and a 1x1 transition."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, kernel_size: int = 3,
                 act: str | tuple | None = "relu", norm: str | tuple | None = "batch") -> None:
        super().__init__()
        growth = max(1, out_channels // 2)
        self.layers = nn.ModuleList(
            conv_norm_act(spatial_dims, in_channels + i * growth, growth, kernel_size, act, norm)
            for i in range(DENSE_LAYERS))
        self.transition = conv_norm_act(spatial_dims, in_channels + DENSE_LAYERS * growth, out_channels, 1, act, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, dim=1)))
        return self.transition(torch.cat(features, dim=1))


class InceptionBlock(nn.Module):
    """Four parallel branches (1x1; 1x1 -> k; 1x1 -> k -> k; pool -> 1x1) concatenated to ``out_channels``.

    Raises:
        ValueError: ``out_channels < 4`` (one channel per branch at least).
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, kernel_size: int = 3,
                 act: str | tuple | None = "relu", norm: str | tuple | None = "batch") -> None:
        super().__init__()
        if out_channels < 4:
            raise ValueError(f"an inception block needs out_channels >= 4 (four branches), got {out_channels}.")
        w = out_channels // 4
        widths = (out_channels - 3 * w, w, w, w)

        def cna(c_in: int, c_out: int, k: int) -> Convolution:
            return conv_norm_act(spatial_dims, c_in, c_out, k, act, norm)

        self.branches = nn.ModuleList([
            cna(in_channels, widths[0], 1),
            nn.Sequential(cna(in_channels, widths[1], 1), cna(widths[1], widths[1], kernel_size)),
            nn.Sequential(cna(in_channels, widths[2], 1), cna(widths[2], widths[2], kernel_size),
                          cna(widths[2], widths[2], kernel_size)),
            nn.Sequential(Pool[Pool.MAX, spatial_dims](kernel_size=3, stride=1, padding=1),
                          cna(in_channels, widths[3], 1)),
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


#: block name -> class ``(spatial_dims, in_channels, out_channels, kernel_size, act, norm)``
BLOCKS: dict[str, Callable[..., nn.Module]] = {
    "vgg": VGGBlock, "residual": ResidualBlock, "dense": DenseBlock, "inception": InceptionBlock}
if tuple(BLOCKS) != BLOCK_TYPES:  # the encoding's options are this table's names, in its order
    raise ImportError(f"mbnas BLOCKS {tuple(BLOCKS)} differ from the encoding's BLOCK_TYPES {BLOCK_TYPES}.")


def get_block(name: str) -> Callable[..., nn.Module]:
    """The block class named ``name``.

    Raises:
        KeyError: an unknown name (the message lists the known ones).
    """
    if name not in BLOCKS:
        raise KeyError(f"unknown MB-NAS block type {name!r}; choose one of {list(BLOCKS)}.")
    return BLOCKS[name]
