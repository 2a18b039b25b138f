"""Trials on Dask distributed: a 2-worker ``LocalCluster`` and a 1-worker cluster reached by its address give the
search of the serial runner (issue 17, part 3); GPU trials ask for the ``GPU`` resource. Few tests: a cluster costs
seconds to start."""

from __future__ import annotations

import json
from functools import partial

import pytest

from tests.strategies.toy import Toy, separable, toy_trial
from vnas_monai.strategies import DaskRunner, SerialRunner, TrialArchive, TrialError, run_local_search, without_time

distributed = pytest.importorskip(
    "distributed", reason='Dask distributed is not installed: pip install "vnas_monai[distributed]"')

TABLE = ((0, 2, 1), (1, 0, 3), (0, 1, 1))
LANDSCAPE = separable(TABLE)


def _search(work_dir, runner, trial=None):
    trial = trial or partial(toy_trial, landscape=LANDSCAPE)
    return run_local_search(Toy((0, 0, 0)), trial, work_dir, folds=(0, 1), seeds=(0, 1), budget=30, seed=4,
                            runner=runner, progress=False)


def _summary(result, resources=False):
    """What must not depend on the runner: the result, the trajectory, the archive as a set (time fields aside)."""
    records = set()
    for r in TrialArchive(result.archive_path):
        r = without_time(r)
        if resources:
            assert r["metrics"].pop("resources") == {"GPU": 1}
        records.add(json.dumps(r, sort_keys=True))
    return (result.best.digest(), result.score, result.evaluations, result.converged, result.history,
            result.trajectory_path.read_text(), records)


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    return _summary(_search(tmp_path_factory.mktemp("serial"), SerialRunner()))


def test_two_local_workers_search_as_the_serial_runner(tmp_path, serial):
    with DaskRunner(n_workers=2, threads_per_worker=1) as runner:
        assert len(runner.client.scheduler_info()["workers"]) == 2 and runner.trial_resources is None
        result = _search(tmp_path, runner)
    assert result.trials_run == len(serial[-1])
    assert _summary(result) == serial


def test_one_worker_by_address_with_a_gpu_resource(tmp_path, serial):
    """An existing scheduler (here a LocalCluster whose worker offers ``GPU=1``), reached by ``address``; GPU trials
    request it. A failing trial is named, and the trials finished before it stay archived."""
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, resources={"GPU": 1},
                                  dashboard_address=None) as cluster:
        with DaskRunner(address=cluster.scheduler_address, gpu=True) as runner:
            assert runner.trial_resources == {"GPU": 1}
            result = _search(tmp_path / "gpu", runner, partial(toy_trial, landscape=LANDSCAPE, with_resources=True))
            assert _summary(result, resources=True) == serial
            broken = {k: v for k, v in LANDSCAPE.items() if k != (0, 0, 2)}  # a KeyError on the worker
            with pytest.raises(TrialError, match=r"failed on a Dask worker: KeyError"):
                _search(tmp_path / "broken", runner, partial(toy_trial, landscape=broken))
            assert len(TrialArchive(tmp_path / "broken" / "trials.jsonl")) >= 4  # the initial encoding's trials
