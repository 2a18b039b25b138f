"""The NAS-3D-U-Net supernet: every HM of every cell holds its whole op table, mixed by softmax(alpha).

Wang, BraTS 2019, §2.4 (Fig. 4: ``HM(x) = sum_i softmax(alpha)_i OP_i(x)``; alpha initialised to 0, §3.3) with the
alternating first-order updates of Table 2 run by the generic trainer
(:class:`vnas_monai.engine.VNASSearchTrainer`). All downward cells share one set of alphas and all upward cells
another (one searched DC and one searched UC, Fig. 6), held as four ``nn.Parameter`` s in the state dict:

    alpha_down         (6, 6)  the DC's DHMs on x0 / x1     (rows: node0<-x0, node0<-x1, node1<-x0, ... node2<-x1)
    alpha_down_normal  (3, 5)  the DC's NHMs between nodes  (rows: node1<-node0, node2<-node0, node2<-node1)
    alpha_up           (6, 4)  the UC's UHMs on x0 / x1
    alpha_up_normal    (3, 5)  the UC's NHMs between nodes

The probability tables (``arch_probabilities``) carry the same names without ``alpha_`` (the genotype's
:data:`.genotype.PARTS`).
"""

from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .backbone import NAS3DUNetBackbone
from .genotype import PARTS, Genotype
from .tables import CELL_KINDS, OP_TABLES, edge_key, edge_kind, edges

__all__ = ["ARCH_PARAM_NAMES", "NAS3DUNetSupernet"]

ARCH_PARAM_NAMES = tuple(f"alpha_{part}" for part in PARTS)


def _full_hms(cell: str) -> dict[str, list[str]]:
    return {edge_key(i, s): list(OP_TABLES[edge_kind(cell, s)]) for i, s in edges()}


class NAS3DUNetSupernet(NAS3DUNetBackbone):
    """NAS-3D-U-Net supernet (:class:`vnas_monai.spaces.DifferentiableSpace`).

    Args:
        spatial_dims, in_channels, out_channels, init_filters, depth, zoom, act, norm, pre_kernel_size: as
            :class:`.backbone.NAS3DUNetBackbone` (MONAI vocabulary).
        mix: the "Mix" baseline: alphas stay zero (uniform HMs, ``requires_grad=False``).

    Shapes: (N, in_channels, H, W, D) -> logits (N, out_channels, H, W, D); H, W, D multiples of 2^(depth + 1).
    """

    def __init__(self, spatial_dims: int = 3, in_channels: int = 4, out_channels: int = 3,
                 init_filters: Optional[int] = None, mix: bool = False, **kwargs: Any) -> None:
        super().__init__(_full_hms("down"), _full_hms("up"), spatial_dims=spatial_dims, in_channels=in_channels,
                         out_channels=out_channels, init_filters=init_filters, **kwargs)
        self.config = dict(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels,
                           init_filters=init_filters, **kwargs)
        self.mix = bool(mix)
        for part, (_, rows, kind) in PARTS.items():
            self.register_parameter(f"alpha_{part}", nn.Parameter(torch.zeros(len(rows), len(OP_TABLES[kind])),
                                                                  requires_grad=not self.mix))
        # edges a genotype imposed by set_architecture prunes (not state: the search never sets it)
        self.pruned: dict[str, set[str]] = {cell: set() for cell in CELL_KINDS}

    def arch_parameters(self) -> list[nn.Parameter]:
        """The four alpha tables (module docstring), for the architecture optimizer only."""
        return [getattr(self, name) for name in ARCH_PARAM_NAMES]

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every parameter except the alphas (the paper's kernel parameters), for the weight optimizer."""
        return [p for n, p in self.named_parameters() if n not in ARCH_PARAM_NAMES]

    def arch_probabilities(self) -> dict[str, torch.Tensor]:
        """Detached softmax of each alpha table: ``{"down": (6, 6), "down_normal": (3, 5), "up": (6, 4),
        "up_normal": (3, 5)}``."""
        return {part: F.softmax(getattr(self, f"alpha_{part}").detach().float(), -1).cpu() for part in PARTS}

    def derive(self) -> Genotype:
        """The genotype of the current alphas (argmax op per HM, two best HMs per node), with the probabilities."""
        return Genotype.from_probabilities({k: v.tolist() for k, v in self.arch_probabilities().items()})

    def set_architecture(self, genotype: Optional[Genotype | str | dict], strength: float = 1e4) -> None:
        """Make the supernet compute ``genotype``: alphas (numerically) one-hot on its ops, and the HMs a node did
        not keep pruned from the forward pass (the second step of the discretisation, which no alpha expresses).
        ``None`` restores the full supernet (alphas unchanged). For tests, warm starts and evaluating a genotype
        with the supernet's weights."""
        if genotype is None:
            self.pruned = {cell: set() for cell in CELL_KINDS}
            return
        geno = Genotype.resolve(genotype)
        with torch.no_grad():
            for part, (cell, rows, kind) in PARTS.items():
                param = getattr(self, f"alpha_{part}")
                param.zero_()
                for r, (node, source) in enumerate(rows):
                    op = geno.cells[cell][node].get(source)
                    if op is not None:
                        param[r, OP_TABLES[kind].index(op)] = strength
        self.pruned = {cell: {edge_key(i, s) for i, s in edges() if s not in geno.cells[cell][i]}
                       for cell in CELL_KINDS}

    def hm_weights(self) -> dict[str, dict[str, torch.Tensor]]:
        """Cell kind -> edge name -> the softmax weights of its HM (pruned edges left out)."""
        out: dict[str, dict[str, torch.Tensor]] = {cell: {} for cell in CELL_KINDS}
        for part, (cell, rows, _) in PARTS.items():
            probs = F.softmax(getattr(self, f"alpha_{part}"), -1)
            for r, (node, source) in enumerate(rows):
                key = edge_key(node, source)
                if key not in self.pruned[cell]:
                    out[cell][key] = probs[r]
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.hm_weights()
        return self.run(x, weights["down"], weights["up"])
