"""The NAS-3D-U-Net stop rule (Table 2): N_C sightings of one genotype, or N_E epochs, resumable."""

from __future__ import annotations

import io
import json

import pytest
import torch
from ignite.engine import Engine, Events

from vnas_monai.engine import GenotypeStopRule
from vnas_monai.spaces.nas3dunet import Genotype


class FakeEncoding:
    def __init__(self, name: str) -> None:
        self.name = name

    def digest(self) -> str:
        return f"digest-{self.name}"

    def to_dict(self) -> dict:
        return {"name": self.name}


def _engine(sequence, max_epochs=50):
    """A 2-iteration-per-epoch engine whose derived genotype at epoch e is ``sequence[e - 1]``."""
    engine = Engine(lambda e, b: None)
    engine.state.max_epochs = max_epochs

    def derive():
        item = sequence[engine.state.epoch - 1]
        return FakeEncoding(item) if isinstance(item, str) else item

    return engine, derive


def _run(sequence, n_c, n_e=None, max_epochs=50, output_dir=None):
    engine, derive = _engine(sequence, max_epochs)
    rule = GenotypeStopRule(n_c, n_e, derive, output_dir=output_dir)
    rule.attach(engine)
    engine.run([0, 1], max_epochs=max_epochs)
    return engine, rule


SEQ = ["a", "b", "a", "c", "b", "a", "b", "b", "a", "c", "a", "a"]


def test_stops_exactly_at_the_n_c_th_sighting(tmp_path):
    engine, rule = _run(SEQ, n_c=3, output_dir=tmp_path)
    assert engine.state.epoch == 6 and engine.state.iteration == 12  # the third "a" is derived after epoch 6
    assert rule.reason == "n_c" and rule.chosen == "digest-a"
    assert rule.counts == {"digest-a": 3, "digest-b": 2, "digest-c": 1}
    counts = json.loads((tmp_path / "genotype_counts.json").read_text())
    assert counts["stopped"] and counts["reason"] == "n_c" and counts["epoch"] == 6
    assert counts["counts"] == rule.counts and counts["genotype"] == {"name": "a"} and counts["chosen_count"] == 3
    assert [h[1] for h in counts["history"]] == [f"digest-{s}" for s in SEQ[:6]]
    assert json.loads((tmp_path / "genotype.json").read_text()) == {"name": "a"}
    engine4, _ = _run(SEQ, n_c=4)
    assert engine4.state.epoch == 8  # the fourth "b"


def test_after_n_e_epochs_the_most_frequent_wins(tmp_path):
    engine, rule = _run(["a", "b", "b", "c", "a", "a"], n_c=10, n_e=4, output_dir=tmp_path)
    assert engine.state.epoch == 4 and rule.reason == "n_e" and rule.chosen == "digest-b"
    assert rule.result() == {"name": "b"}
    _, tie = _run(["a", "b", "b", "a"], n_c=10, n_e=4)
    assert tie.chosen == "digest-a"  # tie: the one seen last
    engine, rule = _run(SEQ, n_c=10, max_epochs=5, output_dir=tmp_path / "short")
    assert engine.state.epoch == 5 and not rule.stopped  # the trainer's own end: no decision, a provisional answer
    data = json.loads((tmp_path / "short" / "genotype_counts.json").read_text())
    assert data["stopped"] is False and data["chosen"] == "digest-b" and data["chosen_count"] == 2  # a b a c b
    assert not (tmp_path / "short" / "genotype.json").exists()


def _roundtrip(state):
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


@pytest.mark.parametrize("stop_after", [1, 3, 5])
def test_resume_stops_at_the_same_epoch(stop_after):
    full_engine, full = _run(SEQ, n_c=4)
    first, derive = _engine(SEQ)
    rule = GenotypeStopRule(4, None, derive)
    rule.attach(first)
    saved = {}
    # a checkpoint handler attached before the rule: its state_dict() must already hold this epoch's count
    first.add_event_handler(Events.EPOCH_COMPLETED, lambda e: saved.update(rule=_roundtrip(rule.state_dict()),
                                                                           engine=dict(e.state_dict())))
    first.run([0, 1], max_epochs=stop_after)
    assert saved["rule"]["history"][-1][0] == stop_after and len(saved["rule"]["history"]) == stop_after

    second, derive2 = _engine(SEQ)
    resumed = GenotypeStopRule(4, None, derive2)
    resumed.load_state_dict(saved["rule"])
    resumed.attach(second)
    second.load_state_dict({**saved["engine"], "max_epochs": 50})
    second.run([0, 1])
    assert second.state.epoch == full_engine.state.epoch == 8
    assert resumed.counts == full.counts and resumed.history == full.history and resumed.chosen == full.chosen


def test_counted_once_per_epoch_and_a_stopped_search_does_not_train_again():
    engine, derive = _engine(SEQ)
    rule = GenotypeStopRule(3, None, derive)
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: rule.state_dict())  # before the rule's handler
    rule.attach(engine)
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: rule.state_dict())  # and after it
    engine.run([0, 1], max_epochs=50)
    assert engine.state.epoch == 6 and sum(rule.counts.values()) == 6

    again, derive2 = _engine(SEQ)
    relaunched = GenotypeStopRule(3, None, derive2)
    relaunched.load_state_dict(_roundtrip(rule.state_dict()))
    relaunched.attach(again)
    again.load_state_dict({**engine.state_dict(), "max_epochs": 50})
    again.run([0, 1])
    assert again.state.iteration == 12 and relaunched.counts == rule.counts


def test_real_genotypes_and_default_derive_from_the_network(tmp_path):
    genotypes = [Genotype.random(s) for s in (0, 1, 0, 0)]
    engine, derive = _engine(genotypes)
    engine.network = type("Net", (torch.nn.Module,), {"derive": lambda self: derive()})()
    rule = GenotypeStopRule(3, output_dir=tmp_path)
    rule.attach(engine)
    engine.run([0, 1], max_epochs=10)
    assert engine.state.epoch == 4 and rule.chosen == genotypes[0].digest()
    assert Genotype.load(tmp_path / "genotype.json") == genotypes[0]


def test_bad_arguments_and_state():
    with pytest.raises(ValueError, match=r"n_c must be an int >= 1, got 0"):
        GenotypeStopRule(0)
    with pytest.raises(ValueError, match="must be a mapping with 'counts', 'genotypes' and 'history'"):
        GenotypeStopRule(2).load_state_dict({"counts": {}})
    with pytest.raises(ValueError, match="'counts' do not match"):
        GenotypeStopRule(2).load_state_dict({"counts": {"x": 2}, "genotypes": {"x": {}}, "history": [[1, "x"]]})
    engine = Engine(lambda e, b: None)
    GenotypeStopRule(2).attach(engine)
    with pytest.raises(ValueError, match="needs derive_fn"):
        engine.run([0], max_epochs=1)
