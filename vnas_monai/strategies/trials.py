"""Trials of a local search, run in process or on Dask distributed.

A trial is one training of one encoding on one fold with one seed; MB-NAS scores an encoding by the mean over k folds
x s seeds (Bosma et al. 2022, §2.3: 5 x 3). A *trial function* ``trial_fn(encoding, fold, seed) -> dict`` returns
at least ``score`` (a finite float, higher is better: the validation Dice averaged over the last 20 % of epochs) and
whatever else is worth archiving (``params``, ``macs``, ``time_s``, ...). It must be picklable: a top-level function
or a :func:`functools.partial` of one, importable on the workers.

Why Dask distributed (issue 17, part 3): it is pure Python (``pip install "vnas_monai[distributed]"``), its
``LocalCluster`` runs on one machine with no server to start, the same code connects to a running scheduler with
``Client(address)``, and *worker resources* give each trial a GPU of its own; a trial is a plain function call, so the
local search keeps its own control flow (Ray Tune would own the loop). Ray core would do as well, at the cost of a
larger, compiled dependency.

Runners evaluate a batch of independent trials (one neighbourhood pass) and yield each result as it completes:

* :class:`SerialRunner`: one after another, in this process (no Dask; tests, debugging, one GPU).
* :class:`DaskRunner`: ``DaskRunner()`` starts a ``LocalCluster`` of worker processes, each with one thread and
  ``OMP_NUM_THREADS=1``; ``DaskRunner(address="tcp://host:8786")`` connects to an existing scheduler.

On a cluster, step by step:

1. On every machine, the same environment: ``pip install -e ".[distributed]"`` of this repository, and the data at
   the same path (trials read it on the workers).
2. On one machine, start the scheduler: ``dask scheduler --port 8786`` (it prints ``tcp://<host>:8786``).
3. On each GPU machine, one worker per GPU, each pinned to its GPU and offering it as a resource::

       CUDA_VISIBLE_DEVICES=0 OMP_NUM_THREADS=1 dask worker tcp://<host>:8786 --nworkers 1 --nthreads 1 \\
           --resources GPU=1 &
       CUDA_VISIBLE_DEVICES=1 OMP_NUM_THREADS=1 dask worker tcp://<host>:8786 --nworkers 1 --nthreads 1 \\
           --resources GPU=1 &

   (on SLURM: one ``srun`` per GPU, or ``dask-jobqueue``; CPU-only workers: leave out ``--resources``).
4. Run the search with ``DaskRunner(address="tcp://<host>:8786", gpu=True)``: each trial then asks for
   ``resources={"GPU": 1}``, so it waits for a free GPU and runs alone on it (the trial function picks ``cuda``).
   Without ``gpu=True`` trials ask for nothing and run on any worker thread.

Workers that die are replaced by the scheduler and their trials rerun; the search process is the only writer of the
archive (:mod:`vnas_monai.strategies.archive`), so a killed search resumes from it with any runner.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["DaskRunner", "SerialRunner", "Trial", "TrialError", "TrialResult", "TrialRunner", "execute_trial"]

TrialFn = Callable[[Any, int, int], Mapping[str, Any]]


@dataclass(frozen=True)
class Trial:
    """One training: ``encoding`` on ``fold`` with network seed ``seed``."""

    encoding: Any
    fold: int
    seed: int

    @property
    def key(self) -> tuple[str, int, int]:
        """``(digest, fold, seed)``: the archive's key."""
        return self.encoding.digest(), int(self.fold), int(self.seed)


@dataclass(frozen=True)
class TrialResult:
    """What a trial returned (``metrics``, with ``score``), its wall time and when it finished (epoch seconds)."""

    trial: Trial
    metrics: dict[str, Any]
    wall_s: float
    finished_at: float


class TrialError(RuntimeError):
    """A trial function raised or returned something that is not a result; names the trial."""


def execute_trial(trial_fn: TrialFn, encoding: Any, fold: int, seed: int) -> tuple[dict[str, Any], float, float]:
    """Run ``trial_fn(encoding, fold, seed)`` and check its result (where it runs: in process or on a worker).

    Returns:
        ``(metrics, wall_s, finished_at)``, ``metrics`` a plain dict with a finite float ``score``.

    Raises:
        TrialError: the result is not a mapping with a finite number ``score``.
    """
    start = time.perf_counter()
    out = trial_fn(encoding, int(fold), int(seed))
    wall = time.perf_counter() - start
    if not isinstance(out, Mapping) or "score" not in out:
        raise TrialError(f"trial ({encoding.digest()}, fold {fold}, seed {seed}): the trial function must return a "
                         f"dict with a 'score', got {out!r}.")
    metrics = dict(out)
    try:
        metrics["score"] = float(metrics["score"])
    except (TypeError, ValueError):
        metrics["score"] = math.nan
    if not math.isfinite(metrics["score"]):
        raise TrialError(f"trial ({encoding.digest()}, fold {fold}, seed {seed}): score {out['score']!r} is not a "
                         "finite number (map a diverged training to a low score in the trial function).")
    return metrics, wall, time.time()


class TrialRunner:
    """Evaluates batches of independent trials; :meth:`run` yields results in the order they complete."""

    def run(self, trial_fn: TrialFn, trials: Sequence[Trial]) -> Iterator[TrialResult]:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the runner started (nothing for a serial runner)."""

    def __enter__(self) -> TrialRunner:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class SerialRunner(TrialRunner):
    """Runs trials one after another in this process (in the order given)."""

    def run(self, trial_fn: TrialFn, trials: Sequence[Trial]) -> Iterator[TrialResult]:
        for trial in trials:
            metrics, wall, finished = execute_trial(trial_fn, trial.encoding, trial.fold, trial.seed)
            yield TrialResult(trial, metrics, wall, finished)


class DaskRunner(TrialRunner):
    """Runs trials as Dask distributed tasks, all trials of a batch submitted at once.

    Args:
        address: an existing scheduler (``"tcp://host:8786"``); ``None`` starts a ``LocalCluster`` of processes.
        n_workers: worker processes of the local cluster.
        threads_per_worker: threads of each local worker (1: one trial per process, no GIL contention).
        resources: resources each local worker offers, e.g. ``{"GPU": 1}`` on a one-GPU machine (local workers share
            the machine's visible devices: for several GPUs start one pinned worker per GPU, see the module docstring).
        gpu: trials ask for ``resources={"GPU": 1}``; ``None``: when the local workers offer a ``GPU``.
        client: an existing ``distributed.Client`` to use (not closed by :meth:`close`).

    Raises:
        ImportError: ``dask[distributed]`` is not installed (the ``distributed`` extra).
    """

    def __init__(self, address: str | None = None, n_workers: int = 1, threads_per_worker: int = 1,
                 resources: Mapping[str, float] | None = None, gpu: bool | None = None, client: Any = None):
        try:
            from distributed import Client, LocalCluster
        except ImportError as e:
            raise ImportError('DaskRunner needs Dask distributed: pip install "vnas_monai[distributed]" '
                              '(or "dask[distributed]").') from e
        self._cluster = None
        self._own_client = client is None
        if client is not None:
            self.client = client
        elif address is not None:
            self.client = Client(address)
        else:
            import logging

            self._cluster = LocalCluster(
                n_workers=int(n_workers), threads_per_worker=int(threads_per_worker), processes=True,
                resources=dict(resources) if resources else None, dashboard_address=None,
                silence_logs=logging.WARNING, env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
            self.client = Client(self._cluster)
        if gpu is None:
            gpu = bool(resources and resources.get("GPU"))
        #: what each trial asks of a worker
        self.trial_resources = {"GPU": 1} if gpu else None

    def run(self, trial_fn: TrialFn, trials: Sequence[Trial]) -> Iterator[TrialResult]:
        from distributed import as_completed

        futures = {}
        for trial in trials:
            digest, fold, seed = trial.key
            future = self.client.submit(execute_trial, trial_fn, trial.encoding, fold, seed, pure=False,
                                        key=f"trial-{digest}-f{fold}-s{seed}-{uuid.uuid4().hex[:8]}",
                                        resources=self.trial_resources)
            futures[future] = trial
        try:
            for future in as_completed(futures):
                trial = futures[future]
                try:
                    metrics, wall, finished = future.result()
                except TrialError:
                    raise
                except Exception as e:
                    raise TrialError(f"trial ({trial.key[0]}, fold {trial.fold}, seed {trial.seed}) failed on a "
                                     f"Dask worker: {type(e).__name__}: {e}") from e
                yield TrialResult(trial, metrics, wall, finished)
        finally:  # on an error (or an abandoned generator) nothing keeps computing
            pending = [f for f in futures if not f.done()]
            if pending:
                self.client.cancel(pending)

    def close(self) -> None:
        if self._own_client:
            self.client.close()
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None
