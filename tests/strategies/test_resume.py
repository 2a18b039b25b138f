"""A local search killed mid-trial (SIGKILL) resumes from its archive: no finished trial runs again, and it ends with
the best encoding, archive and trajectory of an uninterrupted run with the same seed (issue 17, part 4)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from functools import partial

from tests.conftest import REPO
from tests.strategies.toy import Toy, read_calls, separable, toy_trial
from vnas_monai.strategies import SerialRunner, TrialArchive, read_jsonl, run_local_search, without_time

TABLE = ((0, 2, 1), (1, 0, 3), (0, 1, 1), (2, 0, 0))
KILL_AFTER = 5  # archived trials


def run_toy_search(work_dir, calls, sleep=0.0):
    """The search of this test (also run as ``python -c`` in a subprocess that the test kills)."""
    trial = partial(toy_trial, landscape=separable(TABLE), sleep=float(sleep), calls=str(calls))
    return run_local_search(Toy((0, 0, 0, 0)), trial, work_dir, folds=(0, 1), seeds=(0,), budget=40, seed=7,
                            runner=SerialRunner(), progress=False)


def _as_set(records):
    """Records as a set, their time fields left out."""
    return {json.dumps(without_time(r), sort_keys=True) for r in records}


def _trial_keys(records):
    return [(r["digest"], r["fold"], r["seed"]) for r in records]


def _kill_mid_trial(work_dir, calls):
    """Start the search in a subprocess and SIGKILL it while a trial runs, after ``KILL_AFTER`` were archived."""
    code = f"from tests.strategies.test_resume import run_toy_search; run_toy_search({str(work_dir)!r}, " \
           f"{str(calls)!r}, sleep=0.3)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env, stderr=subprocess.PIPE)
    archive = work_dir / "trials.jsonl"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            done = len(read_jsonl(archive, repair=False))
            if done >= KILL_AFTER and len(read_calls(calls)) > done:  # a trial started and not finished
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.01)
    finally:
        if proc.poll() is None and time.monotonic() >= deadline:
            proc.kill()
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]


def test_a_search_killed_mid_trial_resumes_to_the_uninterrupted_result(tmp_path):
    work, calls = tmp_path / "killed", tmp_path / "killed.calls"
    _kill_mid_trial(work, calls)
    assert not (work / "best.json").exists()
    before = _trial_keys(read_jsonl(work / "trials.jsonl", repair=False))
    started = read_calls(calls)
    assert len(before) >= KILL_AFTER and len(started) == len(before) + 1  # killed inside the next trial
    interrupted = started[-1]
    assert interrupted not in before

    resumed_calls = tmp_path / "resumed.calls"
    resumed = run_toy_search(work, resumed_calls)
    again = read_calls(resumed_calls)
    assert not set(again) & set(before) and interrupted in again  # no finished trial ran again
    assert resumed.trials_run == len(again) == len(set(again))

    reference = run_toy_search(tmp_path / "uninterrupted", tmp_path / "uninterrupted.calls")
    assert resumed.best.digest() == reference.best.digest() and resumed.score == reference.score
    assert (resumed.evaluations, resumed.converged, resumed.history) == (reference.evaluations, reference.converged,
                                                                         reference.history)
    records = [without_time(r) for r in TrialArchive(resumed.archive_path)]
    assert _as_set(records) == _as_set(TrialArchive(reference.archive_path)) and len(_as_set(records)) == len(records)
    assert set(_trial_keys(records)) == set(before) | set(again)
    assert resumed.trajectory_path.read_text() == reference.trajectory_path.read_text()
    best, ref = (p.read_text() for p in (resumed.best_path, reference.best_path))
    assert best == ref
