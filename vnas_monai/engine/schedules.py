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
import time
from collections.abc import Iterable
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import PolynomialLR

__all__ = ["PolyLR", "TimeBudget", "epoch_length_of", "num_iterations", "epochs_for_iterations"]


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


class TimeBudget:
    """Ignite handler: stop a run after a wall-clock budget, decaying a :class:`PolyLR` over that budget.

    A fixed compute budget (e.g. "30 CPU minutes for search + retraining") does not fix the number of iterations, so
    an iteration horizon cannot be set in advance. After every iteration this handler re-estimates the horizon from
    the measured speed, ``total_iters = iteration * budget / elapsed``, and gives it to the scheduler, so the learning
    rate still reaches 0 when the time runs out; the engine is terminated once the budget is spent. The elapsed time
    is part of :meth:`state_dict`, so a resumed run only spends what is left.

    Args:
        seconds: the budget, counted from :meth:`attach` (or from ``start`` when given, a ``time.perf_counter()``
            value, so that set-up time can be charged to the budget).
        lr_scheduler: a :class:`PolyLR` stepped every iteration, or ``None`` to only stop the run.
        start: ``time.perf_counter()`` at which the budget started.
    """

    def __init__(self, seconds: float, lr_scheduler: PolyLR | None = None, start: float | None = None) -> None:
        if not float(seconds) > 0:
            raise ValueError(f"the time budget must be positive, got {seconds} s.")
        if lr_scheduler is not None and not isinstance(lr_scheduler, PolyLR):
            raise TypeError(f"TimeBudget rescales a vnas_monai PolyLR, got {type(lr_scheduler).__name__}.")
        self.seconds = float(seconds)
        self.lr_scheduler = lr_scheduler
        self._start = start
        self._spent_before = 0.0  # restored from a checkpoint

    def elapsed(self) -> float:
        """Seconds of the budget spent so far (including those of the run this one resumes)."""
        return self._spent_before + (0.0 if self._start is None else time.perf_counter() - self._start)

    def attach(self, engine: Any) -> None:
        from ignite.engine import Events

        if self._start is None:
            self._start = time.perf_counter()
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Any) -> None:
        elapsed = self.elapsed()
        if elapsed >= self.seconds:
            engine.logger.info(f"time budget of {self.seconds:.0f} s spent after iteration {engine.state.iteration}.")
            engine.terminate()
            return
        if self.lr_scheduler is not None:
            done = max(int(self.lr_scheduler.last_epoch), 1)
            self.lr_scheduler.total_iters = max(done + 1, round(done * self.seconds / max(elapsed, 1e-6)))

    def state_dict(self) -> dict[str, float]:
        return {"elapsed": self.elapsed()}

    def load_state_dict(self, state_dict: dict[str, float]) -> None:
        self._spent_before = float(state_dict["elapsed"])
        self._start = time.perf_counter()
