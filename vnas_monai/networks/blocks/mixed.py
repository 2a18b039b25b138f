"""The mixed operation of differentiable search (paper Eq. 2 and Eq. 4), shared by the supernet and discrete net.

A cell holds its candidates in ``self.ops``, an ``nn.ModuleDict`` keyed by candidate name. The supernet's cells hold
all three; the discrete network's cells hold only the chosen one, under the same name, so ``state_dict`` keys match
and weights move between the two by name.
"""


from typing import Optional

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

__all__ = ["MixedOp"]


class MixedOp(nn.Module):
    """sum_i w_i * op_i(x) over the candidates in ``ops``; a single candidate runs alone.

    Args:
        ops: candidate modules keyed by name (``"2d"``, ``"3d"``, ``"p3d"``), all mapping the same input shape to
            the same output shape.
        checkpointing: recompute each candidate in the backward pass instead of storing its activations
            (trades compute for memory during search).

    Forward:
        x: (N, C, H, W, D). weights: None (single candidate) or a (len(ops),) tensor of mixing weights.
        index: optional candidate index; when given, only that candidate runs and is scaled by ``weights[index]``
            (sampled search: a straight-through one-hot weight keeps the gradient to the architecture logits).
    """

    def __init__(self, ops: dict[str, nn.Module], checkpointing: bool = False) -> None:
        super().__init__()
        if not ops:
            raise ValueError("MixedOp needs at least one candidate operation.")
        self.ops = nn.ModuleDict(ops)
        self.checkpointing = checkpointing

    @torch.jit.unused
    def _checkpointed(self, i: int, x: torch.Tensor) -> torch.Tensor:
        return checkpoint(list(self.ops.values())[i], x, use_reentrant=False)

    def forward(
        self, x: torch.Tensor, weights: Optional[torch.Tensor] = None, index: Optional[int] = None
    ) -> torch.Tensor:
        if weights is None and len(self.ops) != 1:
            raise ValueError("a MixedOp with several candidates needs mixing weights.")
        remat = self.checkpointing and self.training and x.requires_grad
        out: Optional[torch.Tensor] = None
        for i, op in enumerate(self.ops.values()):
            if index is None or i == index:
                y = self._checkpointed(i, x) if remat else op(x)
                if weights is not None:
                    y = weights[i] * y
                out = y if out is None else out + y
        if out is None:
            raise ValueError("MixedOp: candidate index out of range.")
        return out
