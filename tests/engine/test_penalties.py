"""Tests of the architecture entropy penalty: value, ramp, state, and that it decides a search the data cannot."""

from __future__ import annotations

import math

import pytest
import torch
from ignite.engine import Events

from vnas_monai.engine import ARCH_LOSS, ArchEntropyPenalty, arch_entropy

from .test_search import make_trainer


def test_entropy_value_and_gradient_direction():
    uniform = torch.zeros(4, 3, requires_grad=True)
    assert float(arch_entropy([uniform]).detach()) == pytest.approx(math.log(3))
    peaked = torch.tensor([[2.0, 0.0, 0.0]], requires_grad=True)
    arch_entropy([peaked]).backward()
    # descending the entropy raises the leader and lowers the others
    assert peaked.grad[0, 0] < 0 and (peaked.grad[0, 1:] > 0).all()
    frozen = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="trainable"):
        arch_entropy([frozen])


def test_ramp_and_state_dict():
    p = ArchEntropyPenalty(0.4, ramp_steps=4)
    assert [p.current_weight(t) for t in (0, 1, 3, 10)] == pytest.approx([0.1, 0.2, 0.4, 0.4])
    q = ArchEntropyPenalty()
    q.load_state_dict(p.state_dict())
    assert q.state_dict() == {"weight": 0.4, "ramp_steps": 4}
    assert ArchEntropyPenalty(0.3).current_weight(0) == 0.3
    with pytest.raises(ValueError, match="weight"):
        ArchEntropyPenalty(-1.0)
    with pytest.raises(ValueError, match="ramp_steps"):
        ArchEntropyPenalty(0.1, ramp_steps=-2)


def _median_margin(net) -> float:
    probs = torch.cat([torch.softmax(p.detach(), -1) for p in net.arch_parameters()])
    top = probs.topk(2, -1).values
    return float((top[:, 0] - top[:, 1]).median())


def test_penalty_decides_the_search_and_leaves_the_logged_loss_alone():
    plain = make_trainer(max_epochs=6)
    plain.run()
    penalised = make_trainer(max_epochs=6, arch_penalty=ArchEntropyPenalty(1.0, ramp_steps=2))
    losses = []
    penalised.add_event_handler(
        Events.ITERATION_COMPLETED, lambda e: losses.append(float(e.state.output[0][ARCH_LOSS]))
    )
    penalised.run()
    # same data, same seeds: only the entropy term differs, and it sharpens every row
    assert _median_margin(penalised.network) > _median_margin(plain.network) + 0.1
    # the logged architecture loss is the data term (cross-entropy of 2 classes: well below ln 3 + data)
    assert all(0 < v < 2.0 for v in losses)
