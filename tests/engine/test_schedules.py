"""Time-budgeted runs: :class:`vnas_monai.engine.TimeBudget` stops the engine and stretches PolyLR over the budget."""

from __future__ import annotations

import pytest
import torch
from ignite.engine import Engine

from vnas_monai.engine import PolyLR, TimeBudget


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr("vnas_monai.engine.schedules.time.perf_counter", fake)
    return fake


def _engine(clock: FakeClock, scheduler: PolyLR | None, seconds_per_iteration: float) -> Engine:
    def step(engine, batch):
        clock.now += seconds_per_iteration
        if scheduler is not None:
            scheduler.optimizer.step()
            scheduler.step()

    return Engine(step)


def test_stops_at_the_budget_and_decays_the_rate_over_it(clock):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = PolyLR(opt, total_iters=10_000)  # a horizon the budget will never reach
    engine = _engine(clock, sched, seconds_per_iteration=1.0)
    TimeBudget(50.0, lr_scheduler=sched).attach(engine)
    engine.run(range(10), max_epochs=1000)
    assert engine.state.iteration == 50  # stopped when 50 s were spent
    assert sched.total_iters == 50  # horizon re-estimated from the measured speed
    assert opt.param_groups[0]["lr"] == 0.0  # annealed to 0 when the time ran out, not left at ~0.1


def test_set_up_time_counts_and_state_dict_resumes(clock):
    start = clock.now
    clock.now += 20.0  # set-up charged to the budget
    budget = TimeBudget(30.0, start=start)
    engine = _engine(clock, None, seconds_per_iteration=2.0)
    budget.attach(engine)
    engine.run(range(100), max_epochs=1)
    assert engine.state.iteration == 5
    state = budget.state_dict()
    assert state == {"elapsed": 30.0}

    resumed = TimeBudget(40.0)
    resumed.load_state_dict(state)
    engine = _engine(clock, None, seconds_per_iteration=2.0)
    resumed.attach(engine)
    engine.run(range(100), max_epochs=1)
    assert engine.state.iteration == 5  # only the 10 s left of the 40 s budget


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="positive"):
        TimeBudget(0)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(TypeError, match="PolyLR"):
        TimeBudget(10, lr_scheduler=torch.optim.lr_scheduler.StepLR(opt, 1))
