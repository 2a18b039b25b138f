"""The trial archive: JSON lines appended durably, read back whole, a torn last line dropped (issue 17, part 4)."""

from __future__ import annotations

import json
import logging

import pytest

from tests.strategies.toy import Toy
from vnas_monai.strategies import TrialArchive, read_jsonl, without_time
from vnas_monai.strategies.archive import append_jsonl


def _fill(path):
    archive = TrialArchive(path)
    for i, values in enumerate([(0, 1), (2, 2), (0, 1)]):
        for fold in (0, 1):
            if i == 2:  # the same encoding again: its trials are archived already
                with pytest.raises(ValueError, match="archived already"):
                    archive.add(Toy(values), fold, 0, {"score": 0.0}, 1.0, 2.0)
                continue
            archive.add(Toy(values), fold, 0, {"score": 0.5 + i / 4 + fold / 8, "params": 7, "macs": 9.5,
                                               "time_s": 1.25}, wall_s=1.5, finished_at=1e9 + i)
    return archive


def test_archive_round_trips(tmp_path):
    path = tmp_path / "trials.jsonl"
    archive = _fill(path)
    again = TrialArchive(path)
    assert list(again) == list(archive) and len(again) == 4
    record = again.get(Toy((2, 2)).digest(), 1, 0)
    assert record == {"digest": Toy((2, 2)).digest(), "fold": 1, "seed": 0, "score": 0.875,
                      "metrics": {"params": 7, "macs": 9.5, "time_s": 1.25}, "wall_s": 1.5,
                      "finished_at": 1e9 + 1, "encoding": Toy((2, 2)).to_dict()}
    assert Toy.from_dict(record["encoding"]).digest() == record["digest"]
    assert without_time(record) == {k: v for k, v in record.items() if k not in ("wall_s", "finished_at")} | {
        "metrics": {"params": 7, "macs": 9.5}}
    assert again.mean_score(Toy((0, 1)).digest(), [0, 1], [0]) == 0.5625
    assert again.mean_score(Toy((0, 1)).digest(), [0, 1, 2], [0]) is None  # fold 2 missing
    assert (Toy((0, 1)).digest(), 0, 0) in again and (Toy((0, 1)).digest(), 0, 1) not in again
    lines = path.read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(line)["encoding"]["space"] == Toy.space for line in lines)


def test_a_torn_last_line_is_dropped_with_a_warning(tmp_path, caplog):
    path = tmp_path / "trials.jsonl"
    _fill(path)
    whole = path.read_bytes()
    for torn in (b'{"digest": "ab', b'{"digest": "ab"}', b"\x00" * 12 + b"\n"):  # cut, no newline, zeros
        path.write_bytes(whole + torn)
        with caplog.at_level(logging.WARNING, logger="vnas_monai.strategies.archive"):
            caplog.clear()
            archive = TrialArchive(path)
        assert len(archive) == 4 and "torn last line" in caplog.text
        assert path.read_bytes() == whole  # cut off, so that the next append starts a line of its own
    archive.add(Toy((1, 1)), 0, 0, {"score": 1.0}, 1.0, 1.0)
    assert len(TrialArchive(path)) == 5
    assert read_jsonl(tmp_path / "missing.jsonl") == []


def test_only_the_last_line_may_be_torn(tmp_path, caplog):
    path = tmp_path / "trials.jsonl"
    _fill(path)
    lines = path.read_bytes().split(b"\n")
    path.write_bytes(b"\n".join(lines[:1] + [b"{not json"] + lines[1:]))
    with pytest.raises(ValueError, match=r"trials.jsonl, line 2: not a JSON record"):
        TrialArchive(path)
    path.write_bytes(b"\n".join(lines[:2] + [lines[1]] + lines[2:]))  # a second record of one trial: the first wins
    with caplog.at_level(logging.WARNING, logger="vnas_monai.strategies.archive"):
        assert len(TrialArchive(path)) == 4
    assert "ignoring a second record" in caplog.text
    append_jsonl(path, {"digest": "x", "fold": 0})
    with pytest.raises(ValueError, match="without digest, fold, seed and score"):
        TrialArchive(path)


def test_records_must_be_plain_json(tmp_path):
    archive = TrialArchive(tmp_path / "trials.jsonl")
    with pytest.raises(ValueError, match="not plain JSON"):
        archive.add(Toy((0, 0)), 0, 0, {"score": 1.0, "dice": float("nan")}, 1.0, 1.0)
    with pytest.raises(ValueError, match="not plain JSON"):
        archive.add(Toy((0, 0)), 0, 0, {"score": 1.0, "net": object()}, 1.0, 1.0)
    assert len(archive) == 0 and not archive.path.exists()
