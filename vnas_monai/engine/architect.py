"""The architecture step of first-order DARTS (V-NAS paper Alg. 1, step 2), apart from any trainer.

Liu et al., "DARTS", ICLR 2019, first-order approximation; Zhu et al., "V-NAS", 3DV 2019, Alg. 1. An
:class:`Architect` owns the architecture optimiser, its gradient scaler and an optional penalty, and takes one step
on one ``S_val`` batch with the weights held fixed. :class:`vnas_monai.engine.VNASSearchTrainer` and
``benchmarks/bench_search.py`` both step through it, so what the benchmark times is what the search runs.

The supernet contract it relies on: ``arch_parameters()`` (the architecture ``nn.Parameter``s) and a forward pass
that depends on them.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DataParallel, DistributedDataParallel
from torch.optim import Optimizer

from vnas_monai.engine.precision import PrecisionPolicy, float_logits

__all__ = ["Architect", "unwrap_network"]


def unwrap_network(network: torch.nn.Module) -> torch.nn.Module:
    """The supernet inside ``DataParallel``/``DistributedDataParallel``/``torch.compile`` wrappers."""
    while True:
        if isinstance(network, (DataParallel, DistributedDataParallel)):
            network = network.module
        elif hasattr(network, "_orig_mod") and not hasattr(network, "arch_parameters"):
            network = network._orig_mod  # torch.compile's OptimizedModule
        else:
            return network


class Architect:
    """One first-order architecture step: ``a <- opt.step(grad_a [L_val(w, a) + penalty(a)])``, ``w`` fixed.

    Gradients are computed for the architecture parameters only (``torch.autograd.grad``: the weights' ``.grad``
    are never touched and their gradient kernels are skipped). Under ``DistributedDataParallel`` the step runs in
    ``no_sync`` and the architecture gradients are averaged over the ranks by hand. The forward pass runs under the
    precision's autocast, the loss on float32 logits, with a ``GradScaler`` that is enabled for float16 only.

    Args:
        optimizer: over ``supernet.arch_parameters()`` only (paper: Adam, lr 3e-4, weight decay 1e-3).
        loss_function: ``loss(logits, label)``, e.g. cross-entropy (the paper's).
        precision: the resolved :class:`vnas_monai.engine.PrecisionPolicy`.
        penalty: optional ``penalty(supernet, engine) -> scalar`` added to the loss of the step (not to the loss it
            returns), e.g. :class:`vnas_monai.engine.ArchEntropyPenalty`.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        loss_function: Callable,
        precision: PrecisionPolicy,
        penalty: Callable | None = None,
    ) -> None:
        self.optimizer = optimizer
        self.loss_function = loss_function
        self.precision = precision
        self.penalty = penalty
        self.scaler = precision.grad_scaler()

    def step(
        self,
        network: torch.nn.Module,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        forward: Callable[[torch.Tensor], Any] | None = None,
        engine: Any = None,
    ) -> torch.Tensor:
        """One step on the batch ``(inputs, targets)``; returns the detached data loss.

        Args:
            network: the supernet, possibly wrapped (DDP, DataParallel, ``torch.compile``).
            inputs, targets: the ``S_val`` batch, on the network's device.
            forward: ``forward(inputs) -> logits`` (default ``network(inputs)``; the trainer passes its inferer).
            engine: handed to the penalty (its schedule reads ``engine.state``).
        """
        supernet = unwrap_network(network)
        params = [p for p in supernet.arch_parameters() if p.requires_grad]
        self.optimizer.zero_grad(set_to_none=True)
        ddp = isinstance(network, DistributedDataParallel)
        # DDP's reducer expects a full backward; the architecture gradients are averaged by hand below instead
        with network.no_sync() if ddp else nullcontext():  # type: ignore[operator]
            with self.precision.autocast():
                pred = forward(inputs) if forward is not None else network(inputs)
            loss = self.loss_function(float_logits(pred), targets).mean()
            total = loss if self.penalty is None else loss + self.penalty(supernet, engine)
            grads = torch.autograd.grad(self.scaler.scale(total), params, allow_unused=True)
        world = dist.get_world_size() if ddp and dist.is_available() and dist.is_initialized() else 1
        for p, g in zip(params, grads):
            g = torch.zeros_like(p) if g is None else g
            if world > 1:
                dist.all_reduce(g)
                g = g / world
            p.grad = g
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach()
