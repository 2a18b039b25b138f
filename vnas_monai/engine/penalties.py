"""Architecture penalties: terms added to the S_val loss of the architecture step (paper Alg. 1, step 2).

A budgeted CPU search takes a few hundred architecture steps, where the paper takes 40,000; the S_val gradient of
alpha/beta is then too noisy to separate the candidates, and the argmax of near-uniform probabilities is noise
(issue 14: median margin 0.05 after 290 steps). DiNTS (He et al., CVPR 2021, Eq. 7) adds the entropy of the
architecture distribution to the loss so that the search ends in a discrete choice. :class:`ArchEntropyPenalty` does
so for V-NAS's per-cell softmax, with a linear ramp: while its weight is small the data term alone moves the
logits (the ranking), and the entropy term then commits each cell to the candidate it leads with.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from ignite.engine import Engine

__all__ = ["ArchEntropyPenalty", "arch_entropy"]


def arch_entropy(params: Any) -> torch.Tensor:
    """Mean entropy (nats) of the row-wise softmax of each (cells, K) logit tensor in ``params``; ln K is uniform."""
    rows = [F.softmax(p.float(), -1) for p in params if p.requires_grad]
    if not rows:
        raise ValueError("arch_entropy needs at least one trainable architecture parameter.")
    probs = torch.cat(rows, 0)
    return -(probs * torch.log(probs.clamp_min(1e-12))).sum(-1).mean()


class ArchEntropyPenalty:
    """``weight(t) * arch_entropy(alpha, beta)`` added to the architecture loss, ``weight(t)`` ramped linearly from 0
    to ``weight`` over the first ``ramp_steps`` architecture steps (``t`` = ``engine.state.arch_iteration``).

    Pass it as ``VNASSearchTrainer(arch_penalty=...)``: the trainer calls it with the supernet at every architecture
    step. ``state_dict()`` holds its settings, so a checkpoint that includes it resumes the same schedule (the step
    count itself is the trainer's resumable ``arch_iteration``).

    Args:
        weight: final weight of the entropy term (nats are comparable to the cross-entropy of the data term).
        ramp_steps: architecture steps to reach ``weight``; 0 applies it at once.
    """

    def __init__(self, weight: float = 0.5, ramp_steps: int = 0) -> None:
        if not float(weight) >= 0:
            raise ValueError(f"ArchEntropyPenalty weight must be >= 0, got {weight!r}.")
        if int(ramp_steps) < 0:
            raise ValueError(f"ArchEntropyPenalty ramp_steps must be >= 0, got {ramp_steps!r}.")
        self.weight, self.ramp_steps = float(weight), int(ramp_steps)

    def current_weight(self, arch_iteration: int) -> float:
        """The weight at architecture step ``arch_iteration`` (0-based count of steps done)."""
        if self.ramp_steps == 0:
            return self.weight
        return self.weight * min(1.0, (arch_iteration + 1) / self.ramp_steps)

    def __call__(self, supernet: torch.nn.Module, engine: Engine) -> torch.Tensor:
        w = self.current_weight(int(getattr(engine.state, "arch_iteration", 0)))
        return w * arch_entropy(supernet.arch_parameters())

    def state_dict(self) -> dict[str, Any]:
        return {"weight": self.weight, "ramp_steps": self.ramp_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.weight, self.ramp_steps = float(state["weight"]), int(state["ramp_steps"])
