"""The trial archive of a local search: every finished trial, one JSON line each, keyed by the encoding's digest.

MB-NAS scores a candidate by training it on k folds x s seeds (Bosma et al. 2022, §2.3), so one search is hundreds
of trainings; the archive is what makes a killed search cheap to resume and what keeps equal encodings from being
trained twice (issue 17, part 4).

Why JSON lines and not SQLite: only the search process writes (workers return results to it), so there is no
concurrent writer to arbitrate; an append-only text file is readable with ``grep``/``jq``/pandas, copies and merges
with ``cat``, and lives on the network file systems of clusters, where SQLite's locking is documented to be unreliable.
Each record is one ``write`` of one line followed by ``flush`` and ``fsync``: a process killed at any moment
(``SIGKILL`` included) leaves at most one torn last line, which :func:`read_jsonl` drops with a warning (the trial
is then simply run again).

A record::

    {"digest": "…", "fold": 0, "seed": 1, "score": 0.83, "metrics": {"params": …, "macs": …, "time_s": …},
     "wall_s": 412.3, "finished_at": 1718000000.0, "encoding": {…the encoding's to_dict()…}}

``metrics`` is what the trial function returned besides ``score``; ``wall_s`` (measured around the trial function)
and ``finished_at`` are the time fields.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = ["TIME_FIELDS", "TrialArchive", "append_jsonl", "read_jsonl", "without_time"]

logger = logging.getLogger(__name__)

#: the fields of a record that differ between two runs of the same trial
TIME_FIELDS = ("wall_s", "finished_at", "metrics.time_s")


def _dumps(record: Mapping[str, Any]) -> bytes:
    try:
        text = json.dumps(record, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"record is not plain JSON (finite numbers, strings, lists, dicts): {e}") from None
    return (text + "\n").encode("utf-8")


def append_jsonl(path: str | os.PathLike, record: Mapping[str, Any]) -> None:
    """Append ``record`` as one line: a single ``write``, then ``flush`` and ``fsync`` (durable once this returns).

    The folder entry is synced too when the call creates the file, so that a new file survives a crash as well.
    """
    path = Path(path)
    line = _dumps(record)
    created = not path.exists()
    if created:
        path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())
    if created and hasattr(os, "O_DIRECTORY"):
        fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_jsonl(path: str | os.PathLike, repair: bool = True) -> list[dict[str, Any]]:
    """The records of a JSON-lines file (``[]`` when it does not exist).

    A torn last line (no newline, or not JSON: the writer was killed mid-append) is dropped with a warning and, with
    ``repair``, cut from the file, so that the next append starts on a line of its own.

    Raises:
        ValueError: a line other than the last is not a JSON object (the file was edited or is not an archive).
    """
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    records: list[dict[str, Any]] = []
    pos = good_end = number = 0
    while pos < len(data):
        number += 1
        newline = data.find(b"\n", pos)
        if newline < 0:  # a line without its newline was cut mid-write, even where it parses
            break
        line, after = data[pos:newline], newline + 1
        if line.strip():
            try:
                record = json.loads(line.decode("utf-8"))
                if not isinstance(record, dict):
                    raise ValueError(f"a JSON {type(record).__name__}, not an object")
            except ValueError as e:
                if data[after:].strip():
                    raise ValueError(f"{path}, line {number}: not a JSON record ({e}); only a torn last line is "
                                     "tolerated.") from None
                break
            records.append(record)
        pos = good_end = after
    if good_end < len(data):
        logger.warning("%s: dropping a torn last line (line %d, %d bytes): its writer was killed mid-append.", path,
                       number, len(data) - good_end)
        if repair:
            with open(path, "r+b") as f:
                f.truncate(good_end)
                f.flush()
                os.fsync(f.fileno())
    return records


class TrialArchive:
    """Finished trials of a search, keyed by ``(digest, fold, seed)``, backed by a JSON-lines file.

    Loading keeps the first record of a key (a later duplicate is ignored with a warning: two processes shared the
    file). Appends are durable when :meth:`add` returns.

    Args:
        path: the ``.jsonl`` file; created on the first :meth:`add`.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._records: dict[tuple[str, int, int], dict[str, Any]] = {}
        for record in read_jsonl(self.path):
            try:
                key = (str(record["digest"]), int(record["fold"]), int(record["seed"]))
                float(record["score"])
            except (KeyError, TypeError, ValueError):
                raise ValueError(f"{self.path}: a record without digest, fold, seed and score: {record}") from None
            if key in self._records:
                logger.warning("%s: ignoring a second record of trial %s.", self.path, key)
                continue
            self._records[key] = record

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, key: object) -> bool:
        return key in self._records

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self._records.values())

    def get(self, digest: str, fold: int, seed: int) -> dict[str, Any] | None:
        return self._records.get((digest, int(fold), int(seed)))

    def add(self, encoding: Any, fold: int, seed: int, metrics: Mapping[str, Any], wall_s: float,
            finished_at: float) -> dict[str, Any]:
        """Append a finished trial (``metrics`` holds ``score`` and the rest of what the trial returned).

        Raises:
            ValueError: the trial is archived already, or the record is not plain JSON.
        """
        key = (encoding.digest(), int(fold), int(seed))
        if key in self._records:
            raise ValueError(f"trial {key} is archived already: equal trials are never run twice.")
        rest = {k: v for k, v in metrics.items() if k != "score"}
        record = {"digest": key[0], "fold": key[1], "seed": key[2], "score": float(metrics["score"]),
                  "metrics": rest, "wall_s": float(wall_s), "finished_at": float(finished_at),
                  "encoding": encoding.to_dict()}
        append_jsonl(self.path, record)
        self._records[key] = json.loads(_dumps(record))  # as a reload reads it back
        return self._records[key]

    def mean_score(self, digest: str, folds: Iterable[int], seeds: Iterable[int]) -> float | None:
        """The mean score over ``folds`` x ``seeds``, in that order (the same float however the trials finished);
        ``None`` while one of them is missing."""
        seeds = list(seeds)
        scores = []
        for fold in folds:
            for seed in seeds:
                record = self.get(digest, fold, seed)
                if record is None:
                    return None
                scores.append(float(record["score"]))
        return sum(scores) / len(scores)


def without_time(record: Mapping[str, Any]) -> dict[str, Any]:
    """``record`` without its :data:`TIME_FIELDS` (to compare two runs of the same trials)."""
    out = {k: v for k, v in record.items() if k not in ("wall_s", "finished_at")}
    if isinstance(out.get("metrics"), Mapping):
        out["metrics"] = {k: v for k, v in out["metrics"].items() if k != "time_s"}
    return out
