"""The V-NAS search space: every cell holds all three candidates, mixed by softmax(alpha) and softmax(beta).

Zhu et al., "V-NAS", 3DV 2019, Eq. 2 and Eq. 4; first-order DARTS (Liu et al., ICLR 2019). The architecture
parameters are ``nn.Parameter``s in the state dict (``alpha`` (16, 3), ``beta`` (5, 3)); the search engine hands
them to its own optimizer and never to the weight optimizer.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.utils import StrEnum

from .backbone import VNASBackbone
from .encoding import NUM_DECODER_BLOCKS, NUM_ENCODER_CELLS, OP_NAMES, Architecture

__all__ = ["VNASSupernet", "SearchMode"]

ARCH_PARAM_NAMES = ("alpha", "beta")


class SearchMode(StrEnum):
    """``mixed``: every candidate runs, weighted by its softmax probability (the paper).
    ``sampled``: one candidate per cell per step, drawn by straight-through Gumbel-softmax, so a training step costs
    about one candidate's compute; evaluation still uses the softmax mixture."""

    MIXED = "mixed"
    SAMPLED = "sampled"


class VNASSupernet(VNASBackbone):
    """V-NAS supernet: 3^21 architectures in one network.

    Args:
        spatial_dims, in_channels, out_channels, init_filters: as ``VNASBackbone`` (MONAI vocabulary).
        mix: the paper's "Mix" baseline: alpha and beta stay equal (zero logits, ``requires_grad=False``).
        search_mode: a ``SearchMode`` (``"mixed"`` or ``"sampled"``).
        tau: Gumbel-softmax temperature of the sampled mode.
        **kwargs: ``act``, ``norm``, ``dense_layers``, ``dense_growth``, ``dense_bn_size``, ``pvp_pool_sizes``,
            ``upsample_mode``, ``checkpointing``, ``conv_impl`` (see ``VNASBackbone``).

    Shapes: (N, in_channels, H, W, D) -> logits (N, out_channels, H, W, D); H, W, D multiples of 32.
    """

    def __init__(
        self,
        spatial_dims: int = 3,
        in_channels: int = 1,
        out_channels: int = 2,
        init_filters: int = 64,
        mix: bool = False,
        search_mode: str = SearchMode.MIXED,
        tau: float = 1.0,
        **kwargs: Any,
    ) -> None:
        all_ops = list(OP_NAMES)
        super().__init__(
            [all_ops] * NUM_ENCODER_CELLS,
            [all_ops] * NUM_DECODER_BLOCKS,
            spatial_dims=spatial_dims,
            in_channels=in_channels,
            out_channels=out_channels,
            init_filters=init_filters,
            **kwargs,
        )
        self.config = dict(
            spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels, init_filters=init_filters
        )
        self.config.update(kwargs)
        self.mix = bool(mix)
        self.search_mode = str(SearchMode(search_mode))
        self.tau = float(tau)
        # Zero logits = uniform probabilities: the start of the search and, frozen, the "Mix" baseline.
        self.alpha = nn.Parameter(torch.zeros(NUM_ENCODER_CELLS, len(OP_NAMES)), requires_grad=not self.mix)
        self.beta = nn.Parameter(torch.zeros(NUM_DECODER_BLOCKS, len(OP_NAMES)), requires_grad=not self.mix)

    def arch_parameters(self) -> list[nn.Parameter]:
        """[alpha (16, 3), beta (5, 3)]: the architecture logits, for the architecture optimizer only."""
        return [self.alpha, self.beta]

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every parameter except alpha and beta, for the weight optimizer."""
        return [p for n, p in self.named_parameters() if n not in ARCH_PARAM_NAMES]

    def arch_probabilities(self) -> dict[str, torch.Tensor]:
        """Detached softmax probabilities: {"encoder": (16, 3), "decoder": (5, 3)}."""
        return {
            "encoder": F.softmax(self.alpha.detach().float(), -1).cpu(),
            "decoder": F.softmax(self.beta.detach().float(), -1).cpu(),
        }

    def derive(self) -> Architecture:
        """Discretise (Alg. 1, last two lines): each cell takes the argmax of its probabilities."""
        p = self.arch_probabilities()
        return Architecture(
            p["encoder"].argmax(-1).tolist(),
            p["decoder"].argmax(-1).tolist(),
            {"encoder": p["encoder"].tolist(), "decoder": p["decoder"].tolist()},
        )

    def set_architecture(self, architecture: Architecture | str, strength: float = 1e4) -> None:
        """Set alpha/beta so that softmax is (numerically) one-hot on ``architecture`` (tests, warm starts)."""
        arch = Architecture.resolve(architecture)
        with torch.no_grad():
            for param, codes in ((self.alpha, arch.encoder), (self.beta, arch.decoder)):
                param.zero_()
                param[torch.arange(len(codes)), torch.tensor(codes)] = strength

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.search_mode == SearchMode.SAMPLED and self.training and not self.mix:
            # Straight-through Gumbel: forward uses a one-hot sample, backward the softmax relaxation.
            a = F.gumbel_softmax(self.alpha, tau=self.tau, hard=True)
            b = F.gumbel_softmax(self.beta, tau=self.tau, hard=True)
            return self.run(x, a, b, a.argmax(-1).tolist(), b.argmax(-1).tolist())
        return self.run(x, F.softmax(self.alpha, -1), F.softmax(self.beta, -1))
