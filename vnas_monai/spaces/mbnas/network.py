"""The discrete MB-NAS network of an encoding (Bosma et al., SPIE 2022, §2.1, Fig. 1a-b).

Cell ``l`` reads node ``l - 1`` (cell 0 reads the image) and computes node ``l``:

1. scaling, as in U-Net (Ronneberger et al. 2015), which the paper's U-Net shape follows: a down-scaling cell
   max-pools by 2 (the block then doubles the channels); an up-scaling cell is a 2x transposed convolution (MONAI
   ``UpSample``, ``deconv``) that halves the channels; a non-scaling cell does neither;
2. with a skip, the scaled input concatenated (channels) with the skip source node, at the same resolution;
3. the node's block (:mod:`.blocks`), to ``init_channels * 2**level`` channels.

A 1x1 convolution on the last node (level 0) gives the logits. Shapes: ``(B, in_channels, *spatial) ->
(B, out_channels, *spatial)``, ``spatial`` of ``spatial_dims`` (2 or 3) sizes, each a multiple of :attr:`divisor`
(``2 ** deepest level``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Union

import torch
import torch.nn as nn
from monai.networks.blocks import Convolution, UpSample
from monai.networks.layers.factories import Pool

from .blocks import get_block
from .encoding import MBNASEncoding
from .rule import NO_SKIP, problems

__all__ = ["MBNASCell", "MBNASNet", "build_network"]

EncodingSpec = Union[MBNASEncoding, Mapping, str, os.PathLike]


class MBNASCell(nn.Module):
    """One cell: scale (``"down"``, ``"same"``, ``"up"``), concatenate the skip (if any), block.

    Args:
        spatial_dims: 2 or 3.
        scale: the node's channel option.
        in_channels: channels of the previous node (or image).
        skip_channels: channels of the skip source (0: no skip).
        out_channels: channels of this node.
        block, kernel_size, act, norm: the block (:mod:`.blocks`).
    """

    def __init__(self, spatial_dims: int, scale: str, in_channels: int, skip_channels: int, out_channels: int,
                 block: str, kernel_size: int, act: Any, norm: Any) -> None:
        super().__init__()
        self.scale_mode, self.has_skip = scale, skip_channels > 0
        if scale == "down":
            self.scale: nn.Module = Pool[Pool.MAX, spatial_dims](kernel_size=2, stride=2)
        elif scale == "up":
            in_channels //= 2
            self.scale = UpSample(spatial_dims, in_channels * 2, in_channels, scale_factor=2, mode="deconv")
        else:
            self.scale = nn.Identity()
        self.block = get_block(block)(spatial_dims, in_channels + skip_channels, out_channels, kernel_size, act, norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        x = self.scale(x)
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.block(x)


class MBNASNet(nn.Module):
    """An MB-NAS segmentation network (module docstring).

    Args:
        encoding: an :class:`MBNASEncoding`, its dict or its JSON file.
        spatial_dims: 2 or 3.
        in_channels: image channels.
        out_channels: classes, background included.
        init_channels: channels at full resolution (level 0); level ``L`` has ``init_channels * 2**L``.
        act: MONAI activation, a name or ``(name, kwargs)``.
        norm: MONAI norm, a name or ``(name, kwargs)`` (the residual block needs one).

    Raises:
        ValueError: an encoding the rule would repair (its problems), or bad dims / channels.
    """

    def __init__(self, encoding: EncodingSpec, spatial_dims: int = 3, in_channels: int = 1, out_channels: int = 2,
                 init_channels: int = 32, act: str | tuple | None = "relu",
                 norm: str | tuple | None = "batch") -> None:
        super().__init__()
        enc = MBNASEncoding.resolve(encoding)
        bad = problems(enc)
        if bad:
            raise ValueError(f"the encoding cannot build a network: {' '.join(bad)} "
                             "(vnas_monai.spaces.mbnas.repair makes it valid).")
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
        if min(in_channels, out_channels, init_channels) < 1:
            raise ValueError(f"in_channels, out_channels and init_channels must be >= 1; got {in_channels}, "
                             f"{out_channels}, {init_channels}.")
        self.encoding, self.spatial_dims = enc, spatial_dims
        levels = enc.levels()
        widths = [init_channels * 2 ** level for level in levels]
        self.divisor = 2 ** max(levels)
        self.skips = list(enc.skips)
        self.cells = nn.ModuleList()
        previous = in_channels
        for node in range(enc.num_nodes):
            skip = enc.skips[node]
            self.cells.append(MBNASCell(spatial_dims, enc.channels[node], previous,
                                        0 if skip == NO_SKIP else widths[skip], widths[node], enc.blocks[node],
                                        enc.kernels[node], act, norm))
            previous = widths[node]
        self.head = Convolution(spatial_dims, previous, out_channels, kernel_size=1, conv_only=True, bias=True)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False):
        """``nn.Module.load_state_dict`` that refuses the weights of another network whatever ``strict`` says:
        MONAI Label loads ``model.pt`` with ``strict=False``, which would leave the cells it does not find at their
        random initialisation (MB-NAS weights carry no encoding to compare, so the tensor names are the check).

        Raises:
            ValueError: the state dict lacks tensors of this network or holds tensors it has not (the weights of
                another encoding, or of another network).
        """
        own = self.state_dict()

        def counted(key: str) -> bool:  # BatchNorm's step counter is optional in older checkpoints
            return not key.endswith("num_batches_tracked")

        missing = [k for k in own if k not in state_dict and counted(k)]
        unexpected = [k for k in state_dict if k not in own and counted(k)]
        if missing or unexpected:
            raise ValueError(
                f"these weights are not of this MBNASNet: the state dict lacks {len(missing)} of its {len(own)} "
                f"tensors (first: {missing[:3]}) and holds {len(unexpected)} it has not (first: {unexpected[:3]}); "
                "they belong to another encoding or network: build MBNASNet with the encoding (arch.json) the "
                "weights were trained with; refusing to run a partly initialised network.")
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != self.spatial_dims + 2 or any(s % self.divisor for s in x.shape[2:]):
            raise ValueError(f"expected (B, C, *spatial) with {self.spatial_dims} spatial sizes, each a multiple of "
                             f"{self.divisor} (2 ** deepest level); got shape {tuple(x.shape)}.")
        nodes: list[torch.Tensor] = []
        for cell, skip in zip(self.cells, self.skips):
            x = cell(x, nodes[skip] if skip != NO_SKIP else None)
            nodes.append(x)
        return self.head(x)


def build_network(encoding: EncodingSpec, spatial_dims: int = 3, in_channels: int = 1, out_channels: int = 2,
                  init_channels: int = 32, act: str | tuple | None = "relu",
                  norm: str | tuple | None = "batch") -> MBNASNet:
    """The space's :class:`~vnas_monai.spaces.protocol.NetworkBuilder`: :class:`MBNASNet` of ``encoding``."""
    return MBNASNet(encoding, spatial_dims, in_channels, out_channels, init_channels, act, norm)
