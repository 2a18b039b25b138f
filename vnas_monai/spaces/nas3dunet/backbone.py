"""The NAS-3D-U-Net backbone (Wang, BraTS 2019, Fig. 3), shared by the supernet and the discrete network.

For an input (N, m, H, W, D) (m modalities), node width ``c0 = init_filters`` (the paper: c0 = m), zoom factor
theta (2) and ``depth`` downward cells, the U has ``depth + 2`` resolution levels (level l at 1/2^l):

    P0   3x3x3 conv + GroupNorm, stride 1    -> 3*c0                @ level 0
    P1   3x3x3 conv + GroupNorm, stride 2    -> 3*c0                @ level 1
    DC_i (x0 = level i-1, x1 = level i)      -> 3*c0*theta^i        @ level i+1,  i = 1 .. depth
    UC   (x0 = skip at level l, x1 = below)  -> the skip's width    @ level l,    l = depth .. 0
    head 1x1x1 conv                          -> out_channels logits @ level 0

P0 and P1 both read the image and have m*n kernels (n = 3 nodes); the i-th DC has node width c0*theta^i, so it
outputs the paper's "m*theta^i" per node (3 nodes concatenated: 3*c0*theta^i channels). The upward path mirrors it:
the UC that returns to level l takes the level-l output of the downward path as its skip ``x0`` and has that
level's width, the last one (level 0, skip P0) gives 3*c0 channels at full resolution. The head gives one logit
channel per region (the paper's sigmoid is the loss's and the inference's, not the network's). Every spatial size
must be a multiple of 2^(depth + 1) (:func:`divisor`).

Alphas are shared by all cells of one kind (one searched DC and one searched UC, Fig. 6), so the subclasses pass
one ``hms`` mapping per cell kind.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional, Union

import torch
import torch.nn as nn

from vnas_monai.networks.layers import ConvNormAct

from .cells import Cell
from .ops import DEFAULT_NORM, norm_for
from .tables import NUM_NODES

__all__ = ["NAS3DUNetBackbone", "divisor"]

LayerSpec = Union[str, tuple, None]
Weights = Optional[Mapping[str, torch.Tensor]]


def divisor(depth: int) -> int:
    """Every spatial size of the input must be a multiple of this: P1 and the ``depth`` DCs halve it."""
    return 2 ** (int(depth) + 1)


class NAS3DUNetBackbone(nn.Module):
    """P0, P1, ``depth`` downward cells, ``depth + 1`` upward cells and the head (module docstring).

    Args:
        down_hms, up_hms: the ``hms`` of every DC and of every UC (edge name -> op names, see :class:`.cells.Cell`).
        spatial_dims: must be 3.
        in_channels: image channels m (modalities).
        out_channels: logit channels (one per region).
        init_filters: node width c0 at levels 0 and 1; default ``in_channels`` (the paper's m).
        depth: number of downward cells (>= 1).
        zoom: the zoom factor theta (int >= 1): the node width grows by it from one DC to the next.
        act, norm: MONAI layer specs (ReLU, GroupNorm; a GroupNorm's ``num_groups`` is fitted to each width).
        pre_kernel_size: kernel of the cells' strided ``pre0`` (1: the paper's 1x1x1).

    Shapes: (N, in_channels, H, W, D) -> logits (N, out_channels, H, W, D); H, W, D multiples of 2^(depth + 1).
    """

    def __init__(
        self,
        down_hms: Mapping[str, Sequence[str]],
        up_hms: Mapping[str, Sequence[str]],
        spatial_dims: int = 3,
        in_channels: int = 4,
        out_channels: int = 3,
        init_filters: Optional[int] = None,
        depth: int = 3,
        zoom: int = 2,
        act: LayerSpec = "relu",
        norm: LayerSpec = DEFAULT_NORM,
        pre_kernel_size: int = 1,
    ) -> None:
        super().__init__()
        if spatial_dims != 3:
            raise ValueError(f"spatial_dims must be 3 for NAS-3D-U-Net, got {spatial_dims}.")
        c0 = int(in_channels if init_filters is None else init_filters)
        if c0 < 1 or int(depth) < 1 or int(zoom) < 1 or int(in_channels) < 1 or int(out_channels) < 1:
            raise ValueError(f"in_channels, out_channels, init_filters, depth and zoom must be >= 1, got "
                             f"{in_channels}, {out_channels}, {c0}, {depth}, {zoom}.")
        self.depth, self.zoom, self.init_filters = int(depth), int(zoom), c0
        self.divisor = divisor(self.depth)
        width = [c0, c0] + [c0 * self.zoom ** i for i in range(1, self.depth + 1)]  # node width per level
        stem = NUM_NODES * c0
        self.p0 = ConvNormAct(3, in_channels, stem, 3, 1, act=None, norm=norm_for(norm, stem))
        self.p1 = ConvNormAct(3, in_channels, stem, 3, 2, act=None, norm=norm_for(norm, stem))
        kw: dict[str, Any] = dict(act=act, norm=norm, pre_kernel_size=pre_kernel_size)
        self.down_cells = nn.ModuleList(
            Cell("down", NUM_NODES * width[i - 1], NUM_NODES * width[i], width[i + 1], down_hms, **kw)
            for i in range(1, self.depth + 1)
        )
        self.up_cells = nn.ModuleList(
            Cell("up", NUM_NODES * width[level], NUM_NODES * width[level + 1], width[level], up_hms, **kw)
            for level in range(self.depth, -1, -1)
        )
        self.head = ConvNormAct(3, stem, out_channels, 1, 1, act=None, norm=None, bias=True)

    def check_input(self, x: torch.Tensor) -> None:
        """Raises ``ValueError`` for an input that is not (N, C, H, W, D) with sizes multiples of the divisor."""
        if x.dim() != 5 or any(int(s) % self.divisor for s in x.shape[2:]):
            raise ValueError(f"NAS-3D-U-Net (depth {self.depth}) needs an (N, C, H, W, D) input whose spatial sizes "
                             f"are multiples of {self.divisor}, got {tuple(x.shape)}.")

    def run(self, x: torch.Tensor, down_weights: Weights = None, up_weights: Weights = None) -> torch.Tensor:
        """The forward pass with the HM mixing weights of the DCs and of the UCs (None: single-op HMs)."""
        self.check_input(x)
        feats = [self.p0(x), self.p1(x)]
        for cell in self.down_cells:
            feats.append(cell(feats[-2], feats[-1], down_weights))
        y = feats[-1]
        for level, cell in zip(range(self.depth, -1, -1), self.up_cells):
            y = cell(feats[level], y, up_weights)
        return self.head(y)
