"""Hybrid modules and the downward / upward cells of NAS-3D-U-Net (Wang, BraTS 2019, Fig. 4 and Fig. 5).

A hybrid module (HM, Fig. 4) is the shared mixed op (:class:`vnas_monai.networks.blocks.MixedOp`) over one op table:
``sum_i softmax(alpha)_i * op_i(x)`` in the supernet, the single chosen op in the discrete network (same module
names, so weights move by ``state_dict``).

A cell (Fig. 5), for a downward cell (DC, ``kind="down"``) or an upward cell (UC, ``kind="up"``), with the inputs
``x0`` (a skip from further back) and ``x1`` (the previous cell's output), node width ``C``:

    pre0: 1x1x1 conv + GroupNorm, stride 2     x0 (N, C0, 2S) -> (N, C, S)
    pre1: 1x1x1 conv + GroupNorm, stride 1     x1 (N, C1, S)  -> (N, C, S)
    node0 = HM(pre0) + HM(pre1)                                  [D, D]     or [U, U]
    node1 = HM(pre0) + HM(pre1) + HM(node0)                      [D, D, N]  or [U, U, N]
    node2 = HM(pre0) + HM(pre1) + HM(node0) + HM(node1)          [D, D, N, N] or [U, U, N, N]
    out   = cat(node0, node1, node2)                             (N, 3C, S/2) in a DC, (N, 3C, 2S) in a UC

The edge-to-HM assignment: the HMs on the cell inputs (``x0``, ``x1``) are of the cell's kind (DHM in a DC: "in DC
the resolution of all inputs would be compressed in the first place", §3.4; UHM in a UC), so every node of a DC is
at half and every node of a UC at twice the resolution of ``x1``; the HMs between nodes are NHMs, which keep the
resolution. Where the text is silent (the figure itself is not in our copy of the paper), we chose:

- ``x0`` always has twice the resolution of ``x1`` ("the two inputs of a Cell always have different shapes",
  Fig. 3: in a DC it comes from two steps back, in a UC it is the skip from the downward path at the UC's output
  resolution), so ``pre0`` has stride 2 in both cell kinds and ``pre1`` stride 1; both are 1x1x1 ("mainly 1x1x1 Conv
  layers"; ``pre_kernel_size`` widens the strided ``pre0``) followed by GroupNorm without activation, like P0 and P1;
- each HM keeps the node width ``C`` ("none of the HMs would change the channel size"), a node is the plain sum of
  its HMs (Fig. 5's blue plus signs) and the cell output is their concatenation (the yellow C), ``3C`` channels.

After discretisation a node keeps its two best HMs (§2.4): the discrete cell holds only those, each with its one op.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Optional, Union

import torch
import torch.nn as nn

from vnas_monai.networks.blocks import MixedOp
from vnas_monai.networks.layers import ConvNormAct

from .ops import DEFAULT_NORM, make_op, norm_for
from .tables import CELL_KINDS, NUM_NODES, check_op, edge_key, edge_kind, edges

__all__ = ["Cell", "HybridModule"]

LayerSpec = Union[str, tuple, None]


class HybridModule(MixedOp):
    """A hybrid module (Fig. 4): the ops ``op_names`` of the ``kind`` table (``"down"``, ``"up"``, ``"normal"``)
    on ``channels`` channels, mixed by the weights given to ``forward`` (one op: run alone, weights optional).

    Shapes: as the ops of its kind (:mod:`.ops`); the channel count is kept.

    Raises:
        ValueError: no op, or an op name that is not in the ``kind`` table (listing the known names).
    """

    def __init__(self, kind: str, channels: int, op_names: Sequence[str], act: LayerSpec = "relu",
                 norm: LayerSpec = DEFAULT_NORM) -> None:
        if not op_names:
            raise ValueError(f"a {kind} hybrid module needs at least one op.")
        super().__init__({check_op(kind, n): make_op(kind, n, channels, act, norm) for n in op_names})
        self.kind = kind


class Cell(nn.Module):
    """A downward (``kind="down"``) or upward (``kind="up"``) cell with 3 nodes (module docstring).

    Args:
        kind: ``"down"`` (DC) or ``"up"`` (UC).
        x0_channels: channels of ``x0`` (at twice the resolution of ``x1``).
        x1_channels: channels of ``x1``.
        channels: the node width C; the cell outputs ``3 * C`` channels.
        hms: edge name (``"node{i}_{source}"``, see :func:`.tables.edge_key`) -> the op names its HM holds; the
            supernet gives all 9 edges their whole table, the discrete network two edges per node with one op each.
        act, norm: MONAI layer specs of the ops (ReLU and GroupNorm in the paper).
        pre_kernel_size: kernel of the strided ``pre0`` (1: the paper's 1x1x1).

    Forward:
        x0 (N, x0_channels, 2H, 2W, 2D), x1 (N, x1_channels, H, W, D); ``weights``: None (every HM holds one op) or
        edge name -> mixing weights of its ops; with weights, an HM whose edge is absent is skipped (a pruned edge).
        Returns (N, 3C, H/2, W/2, D/2) (DC) or (N, 3C, 2H, 2W, 2D) (UC).

    Raises:
        ValueError: an unknown kind or edge, an op outside the edge's table, or a node without an HM.
    """

    def __init__(self, kind: str, x0_channels: int, x1_channels: int, channels: int,
                 hms: Mapping[str, Sequence[str]], act: LayerSpec = "relu", norm: LayerSpec = DEFAULT_NORM,
                 pre_kernel_size: int = 1) -> None:
        super().__init__()
        if kind not in CELL_KINDS:
            raise ValueError(f"unknown cell kind {kind!r}; known: {', '.join(CELL_KINDS)}.")
        known = {edge_key(i, s): (i, s) for i, s in edges()}
        unknown = sorted(set(hms) - set(known))
        if unknown:
            raise ValueError(f"unknown cell edge(s) {unknown}; known: {', '.join(known)}.")
        self.kind = kind
        self.channels = int(channels)
        self.pre0 = ConvNormAct(3, x0_channels, channels, pre_kernel_size, 2, act=None, norm=norm_for(norm, channels))
        self.pre1 = ConvNormAct(3, x1_channels, channels, 1, 1, act=None, norm=norm_for(norm, channels))
        self.hms = nn.ModuleDict()
        # node -> [(source, edge name)], in the order of the edges
        self.wiring: list[list[tuple[str, str]]] = [[] for _ in range(NUM_NODES)]
        for key, (node, source) in known.items():
            if key in hms:
                self.hms[key] = HybridModule(edge_kind(kind, source), channels, list(hms[key]), act, norm)
                self.wiring[node].append((source, key))
        empty = [f"node{i}" for i, wires in enumerate(self.wiring) if not wires]
        if empty:
            raise ValueError(f"{kind} cell: {', '.join(empty)} would have no hybrid module.")

    @property
    def out_channels(self) -> int:
        return NUM_NODES * self.channels

    def forward(self, x0: torch.Tensor, x1: torch.Tensor,
                weights: Optional[Mapping[str, torch.Tensor]] = None) -> torch.Tensor:
        states = {"x0": self.pre0(x0), "x1": self.pre1(x1)}
        nodes = []
        for i, wires in enumerate(self.wiring):
            total: Optional[torch.Tensor] = None
            for source, key in wires:
                if weights is not None and key not in weights:
                    continue  # pruned edge (a genotype imposed on the supernet)
                y = self.hms[key](states[source], None if weights is None else weights[key])
                total = y if total is None else total + y
            if total is None:
                raise ValueError(f"{self.kind} cell: node{i} has no active hybrid module in the given weights.")
            states[f"node{i}"] = total
            nodes.append(total)
        return torch.cat(nodes, dim=1)
