"""Iteration-count helpers for the V-NAS schedules (Zhu et al., 3DV 2019, §4.1).

The paper counts its budget in iterations (40,000 per search, poly learning-rate decay with power 0.9) while MONAI
workflows count epochs. These helpers convert between the two so that a bundle config can size
``torch.optim.lr_scheduler.PolynomialLR(total_iters=...)`` and ``max_epochs`` from the data loader it builds.

:class:`PolyLR` is ``PolynomialLR`` in closed form whose horizon comes from the config, not from the checkpoint:
torch's scheduler restores ``total_iters`` from its state dict, so a search resumed with a larger ``max_epochs``
would keep the old horizon and train on at learning rate 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import PolynomialLR

__all__ = ["PolyLR", "epoch_length_of", "num_iterations", "epochs_for_iterations"]


def epoch_length_of(data_loader: Iterable | None = None, epoch_length: int | None = None) -> int:
    """Iterations per epoch: ``epoch_length`` if given, else ``len(data_loader)`` (as MONAI's ``Workflow`` does).

    Raises:
        ValueError: neither is usable, or the result is not a positive integer.
    """
    if epoch_length is None:
        if data_loader is None:
            raise ValueError("give either a data loader with a length or an explicit epoch_length.")
        try:
            epoch_length = len(data_loader)  # type: ignore[arg-type]
        except TypeError:
            raise ValueError(
                f"{type(data_loader).__name__} has no length (iterable dataset?); pass epoch_length explicitly."
            ) from None
    epoch_length = int(epoch_length)
    if epoch_length < 1:
        raise ValueError(f"an epoch must have at least one iteration, got epoch_length={epoch_length}.")
    return epoch_length


def num_iterations(max_epochs: int, data_loader: Iterable | None = None, epoch_length: int | None = None) -> int:
    """Total weight-update iterations of a run: ``max_epochs * epoch_length``.

    Use it as ``PolynomialLR(total_iters=...)`` when the scheduler is stepped every iteration
    (``LrScheduleHandler(epoch_level=False)``), so the learning rate reaches 0 exactly at the last iteration.
    """
    if int(max_epochs) < 1:
        raise ValueError(f"max_epochs must be >= 1, got {max_epochs}.")
    return int(max_epochs) * epoch_length_of(data_loader, epoch_length)


def epochs_for_iterations(iterations: int, data_loader: Iterable | None = None, epoch_length: int | None = None) -> int:
    """Smallest number of epochs that covers ``iterations`` iterations (the paper's 40,000), at least 1."""
    if int(iterations) < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}.")
    return max(1, math.ceil(int(iterations) / epoch_length_of(data_loader, epoch_length)))


class PolyLR(PolynomialLR):
    """Poly decay ``lr_t = base_lr * (1 - min(t, total_iters) / total_iters) ** power`` (paper §4.1: power 0.9).

    Same schedule as ``torch.optim.lr_scheduler.PolynomialLR`` but computed in closed form, and
    :meth:`load_state_dict` keeps the ``total_iters``/``power`` given to the constructor: resuming restores the step
    count ``t`` while the horizon follows the current config, so extending ``max_epochs`` continues the decay
    towards the new end instead of staying at 0. Step it every iteration with
    ``monai.handlers.LrScheduleHandler(epoch_level=False)``.

    Args:
        optimizer: the weight optimizer (SGD in the paper).
        total_iters: iterations over which the rate decays to 0, e.g. ``num_iterations(max_epochs, loader)``.
        power: decay exponent.
        last_epoch: index of the last step (-1 to start).
    """

    def __init__(self, optimizer: Optimizer, total_iters: int, power: float = 0.9, last_epoch: int = -1) -> None:
        if int(total_iters) < 1:
            raise ValueError(f"total_iters must be >= 1, got {total_iters}.")
        super().__init__(optimizer, total_iters=int(total_iters), power=float(power), last_epoch=last_epoch)

    def get_lr(self) -> list[float]:  # type: ignore[override]
        t = min(max(self.last_epoch, 0), self.total_iters)
        factor = (1.0 - t / self.total_iters) ** self.power
        return [float(base) * factor for base in self.base_lrs]

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        total_iters, power = self.total_iters, self.power
        super().load_state_dict(state_dict)
        self.total_iters, self.power = total_iters, power
        # apply the restored step under the configured horizon now (the optimizer's saved lr used the old one)
        lrs = self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        self._last_lr = list(lrs)
