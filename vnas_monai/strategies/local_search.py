"""MB-NAS's search strategy: first-improvement local search over one variable at a time (Bosma et al. 2022, §2.3).

For each variable, visited in a seeded random order, every option is tried (the encoding's one-variable neighbours,
:func:`vnas_monai.spaces.protocol.neighbours_by_variable`) and the best is kept when it beats the current encoding;
once every variable has been visited the search starts over, until a full pass improves nothing or the evaluation
budget (150 in the paper) is spent. An encoding's score is the mean over k folds x s seeds of its trials
(:mod:`vnas_monai.strategies.trials`), each archived as it finishes (:mod:`vnas_monai.strategies.archive`).

The comparison spaces of §2.4 are restrictions of one space: ``variables`` (the names allowed to change: Macro-NAS
the topology, Micro-NAS block and kernel) and ``stages`` (Bilevel-NAS: the topology first, then the kernel size),
each stage searched to convergence from the previous one's result under the shared budget. The space says which
names are which; this module knows none.

Determinism and resumption: the search draws its variable orders and tie-breaks from ``random.Random(seed)`` and
its scores are means in a fixed fold/seed order, so it is a function of the initial encoding, the seed and the trial
results. A resumed search replays from the start, taking every archived trial from the archive instead of training
it: it visits the same encodings in the same order, trains only what is missing and ends where an uninterrupted run
ends. The budget counts every distinct encoding the search scores, archived or not (the archive saves compute, not
budget), and equal encodings (same digest) are scored once.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from vnas_monai.io import atomic_write_text
from vnas_monai.spaces.protocol import VariableEncoding, neighbours_by_variable

from .archive import TrialArchive, append_jsonl
from .trials import SerialRunner, Trial, TrialRunner

__all__ = ["PAPER_BUDGET", "SearchResult", "local_search", "run_local_search", "search_variables"]

logger = logging.getLogger(__name__)

#: network evaluations of the paper's searches (§2.3)
PAPER_BUDGET = 150


@dataclass(frozen=True)
class SearchResult:
    """The end of a local search.

    Attributes:
        best: the best encoding found (the last one moved to: every move improves).
        score: its mean score over the folds and seeds.
        evaluations: distinct encodings scored (at most the budget).
        converged: the last stage ended on a full pass without improvement (else the budget ran out).
        trials_run: trials this call trained (the others came from the archive).
        history: ``[(evaluation, digest, score), ...]`` in the search's order (score against evaluation count).
        archive_path, trajectory_path, best_path: the files of ``work_dir`` (empty paths from :func:`local_search`).
    """

    best: Any
    score: float
    evaluations: int
    converged: bool
    trials_run: int
    history: list[tuple[int, str, float]] = field(default_factory=list)
    archive_path: Path = Path()
    trajectory_path: Path = Path()
    best_path: Path = Path()


class _Scorer:
    """Scores encodings as mean trial scores: archived trials are read, the missing ones of a batch run together on
    the runner and archived as each completes; counts evaluations against the budget."""

    def __init__(self, trial_fn: Callable, archive: TrialArchive, runner: TrialRunner, folds: Sequence[int],
                 seeds: Sequence[int], budget: int, bar: Any):
        self.trial_fn, self.archive, self.runner = trial_fn, archive, runner
        self.folds, self.seeds, self.budget, self.bar = list(folds), list(seeds), budget, bar
        self.scores: dict[str, float] = {}
        self.index: dict[str, int] = {}  # digest -> evaluation number (1-based, the search's order)
        self.trials_run = 0

    @property
    def left(self) -> int:
        return self.budget - len(self.scores)

    def score(self, encodings: Sequence[Any]) -> dict[str, float]:
        """Scores of ``encodings`` by digest: those scored before cost nothing, new ones are scored in the given order
        while the budget lasts (the others are left out)."""
        new: dict[str, Any] = {}
        for enc in encodings:
            digest = enc.digest()
            if digest not in self.scores and digest not in new and len(new) < self.left:
                new[digest] = enc
        trials = [Trial(enc, f, s) for d, enc in new.items() for f in self.folds for s in self.seeds
                  if (d, f, s) not in self.archive]
        pending = {d: 0 for d in new}
        for trial in trials:
            pending[trial.key[0]] += 1
        self.bar.update(sum(1 for n in pending.values() if n == 0))  # archived whole: no training
        for result in self.runner.run(self.trial_fn, trials) if trials else ():
            t = result.trial
            self.archive.add(t.encoding, t.fold, t.seed, result.metrics, result.wall_s, result.finished_at)
            self.trials_run += 1
            pending[t.key[0]] -= 1
            if pending[t.key[0]] == 0:
                self.bar.update(1)
        for digest in new:  # numbered in the search's order, whatever order the trials finished in
            score = self.archive.mean_score(digest, self.folds, self.seeds)
            assert score is not None, "every trial of a new encoding was run or archived"
            self.scores[digest] = score
            self.index[digest] = len(self.index) + 1
        return {e.digest(): self.scores[e.digest()] for e in encodings if e.digest() in self.scores}

    def history(self) -> list[tuple[int, str, float]]:
        return [(self.index[d], d, self.scores[d]) for d in self.index]


def search_variables(initial: Any) -> list[str]:
    """The variable names of ``initial``'s space, in its order (a :class:`VariableEncoding`'s own names, else the
    groups of its neighbours)."""
    if isinstance(initial, VariableEncoding):
        return list(initial.variables())
    return list(neighbours_by_variable(initial))


def _stages(initial: Any, variables: Iterable[str] | None, stages: Sequence[Iterable[str]] | None) -> list[list[str]]:
    """The stages as lists of names in the space's order (so that a set or a reordered list searches the same)."""
    names = search_variables(initial)

    def check(given: Iterable[str], within: list[str], what: str) -> list[str]:
        given = set(given)
        unknown = sorted(given - set(within))
        if unknown:
            raise ValueError(f"{what} {unknown} are not among {within}.")
        return [n for n in within if n in given]

    allowed = names if variables is None else check(variables, names, "variables")
    out = [allowed] if stages is None else [check(stage, allowed, "stage variables") for stage in stages]
    if not out or not all(out):
        raise ValueError(f"every stage needs at least one variable; got {out}.")
    return out


def local_search(initial: Any, trial_fn: Callable, archive: TrialArchive, runner: TrialRunner | None = None,
                 folds: Sequence[int] = (0,), seeds: Sequence[int] = (0,), budget: int = PAPER_BUDGET, seed: int = 0,
                 variables: Iterable[str] | None = None, stages: Sequence[Iterable[str]] | None = None,
                 trajectory: str | Path | None = None, progress: bool = True) -> SearchResult:
    """First-improvement local search from ``initial`` (§2.3), maximising the mean trial score.

    Args:
        initial: the start encoding (the paper: the U-Net).
        trial_fn: ``trial_fn(encoding, fold, seed) -> {"score": float, ...}``, picklable.
        archive: finished trials; reused, and extended by every trial run.
        runner: where trials run (:class:`SerialRunner` when ``None``).
        folds, seeds: an encoding's score is the mean of its ``len(folds) x len(seeds)`` trials.
        budget: the most distinct encodings to score, the initial one included.
        seed: seeds the variable orders and the tie-breaks.
        variables: the names allowed to change (Macro-/Micro-NAS, §2.4); ``None``: all.
        stages: searched one after another, each to convergence (Bilevel-NAS: ``[topology, kernels]``); ``None``: one.
        trajectory: a JSON-lines file rewritten with the search's steps (a replay rebuilds it whole).
        progress: a progress bar over the budget (tqdm, on stderr).

    Raises:
        ValueError: an empty ``folds``/``seeds``, a budget under 1, or unknown variable names.
    """
    folds, seeds = [int(f) for f in folds], [int(s) for s in seeds]
    if not folds or not seeds or len(set(folds)) < len(folds) or len(set(seeds)) < len(seeds):
        raise ValueError(f"folds and seeds must be non-empty and distinct; got folds {folds}, seeds {seeds}.")
    if int(budget) < 1:
        raise ValueError(f"budget must be at least 1 evaluation; got {budget}.")
    plan = _stages(initial, variables, stages)
    rng = random.Random(seed)
    trajectory = Path(trajectory) if trajectory is not None else None
    if trajectory is not None and trajectory.exists():
        trajectory.unlink()

    def log(record: Mapping[str, Any]) -> None:
        if trajectory is not None:
            append_jsonl(trajectory, record)

    bar = tqdm(total=int(budget), desc="local search", unit="eval", disable=not progress)
    scorer = _Scorer(trial_fn, archive, runner or SerialRunner(), folds, seeds, int(budget), bar)
    try:
        current = initial
        score = scorer.score([initial])[initial.digest()]
        log({"event": "start", "digest": initial.digest(), "score": score, "stages": plan, "budget": int(budget),
             "seed": seed, "folds": folds, "seeds": seeds})
        logger.info("local search: start %s, score %.4f", initial.digest(), score)
        converged, step = True, 0
        for stage_no, names in enumerate(plan):
            pass_no, stopped = 0, False
            while True:
                pass_no += 1
                order = list(names)
                rng.shuffle(order)
                improved = False
                for name in order:
                    if scorer.left <= 0:
                        stopped = True
                        break
                    step += 1
                    current, score, moved = _step(current, score, name, scorer, rng, log,
                                                  {"stage": stage_no, "pass": pass_no, "step": step})
                    improved |= moved
                    bar.set_postfix(best=f"{score:.4f}", refresh=False)
                if stopped or not improved:
                    break
            if stopped:
                converged = False
                logger.info("local search: budget of %d evaluations spent in stage %d, pass %d.", budget, stage_no,
                            pass_no)
                break
            logger.info("local search: stage %d converged after %d passes.", stage_no, pass_no)
        log({"event": "end", "digest": current.digest(), "score": score, "evaluations": len(scorer.scores),
             "converged": converged})
    finally:
        bar.close()
    logger.info("local search: best %s, score %.4f after %d evaluations (%d trials trained now).", current.digest(),
                score, len(scorer.scores), scorer.trials_run)
    return SearchResult(current, score, len(scorer.scores), converged, scorer.trials_run, scorer.history())


def _step(current: Any, score: float, name: str, scorer: _Scorer, rng: random.Random, log: Callable,
          where: dict[str, Any]) -> tuple[Any, float, bool]:
    """Try every option of variable ``name`` around ``current``; move to the best one if it beats ``score`` (ties
    among the best broken by ``rng``). Returns the new current encoding, its score and whether it moved."""
    candidates, seen = [], {current.digest()}
    for option, enc in neighbours_by_variable(current).get(name, []):
        if enc.digest() not in seen:  # a repair rule may give one encoding for two options
            seen.add(enc.digest())
            candidates.append((option, enc))
    scores = scorer.score([enc for _, enc in candidates])
    tried = [(o, e, scores[e.digest()]) for o, e in candidates if e.digest() in scores]
    skipped = [o for o, e in candidates if e.digest() not in scores]
    chosen, moved, before, origin = None, False, score, current.digest()
    if tried:
        top = max(s for _, _, s in tried)
        ties = [t for t in tried if t[2] == top]
        pick = ties[0] if len(ties) == 1 else ties[rng.randrange(len(ties))]
        if top > score:
            chosen, current, score, moved = pick[0], pick[1], top, True
    log({"event": "step", **where, "variable": name, "from": {"digest": origin, "score": before},
         "options": [{"option": o, "digest": e.digest(), "score": s, "evaluation": scorer.index[e.digest()]}
                     for o, e, s in tried],
         "skipped": skipped, "chosen": chosen, "improved": moved, "digest": current.digest(), "score": score,
         "evaluations": len(scorer.scores)})
    logger.info("stage %d pass %d, %s: %s -> %s", where["stage"], where["pass"], name,
                ", ".join(f"{json.dumps(o)}: {s:.4f}" for o, _, s in tried) or "no options",
                f"{json.dumps(chosen)} ({before:.4f} -> {score:.4f})" if moved else f"kept ({score:.4f})")
    return current, score, moved


def _settings(initial: Any, folds: Sequence[int], seeds: Sequence[int], seed: int, plan: list[list[str]]) -> dict:
    return {"space": getattr(initial, "space", None), "initial": initial.digest(), "folds": [int(f) for f in folds],
            "seeds": [int(s) for s in seeds], "seed": int(seed), "stages": plan}


def run_local_search(initial: Any, trial_fn: Callable, work_dir: str | Path, folds: Sequence[int] = range(5),
                     seeds: Sequence[int] = range(3), budget: int = PAPER_BUDGET, seed: int = 0,
                     runner: TrialRunner | None = None, variables: Iterable[str] | None = None,
                     stages: Sequence[Iterable[str]] | None = None, progress: bool = True) -> SearchResult:
    """:func:`local_search` with its files in ``work_dir`` (defaults: the paper's 5 folds x 3 seeds, 150 evaluations):

    * ``trials.jsonl``: the trial archive (a rerun in the same folder resumes from it);
    * ``trajectory.jsonl``: every step (variable, options, scores, choice), rebuilt on each run;
    * ``search.json``: the settings (initial digest, folds, seeds, seed, stages), which a resumed search must match
      (the budget may grow: a resumed search with a larger budget continues as a longer one would have);
    * ``best.json``: the best encoding's ``to_dict()`` plus ``"local_search"`` (score, per-trial scores,
      evaluations, history), written atomically at the end; it loads as an ``arch.json``.

    The trial function is not recorded: a folder belongs to one trial recipe (epochs, data), and trials of another
    recipe need another folder. ``runner`` is not closed here.

    Raises:
        ValueError: ``work_dir`` holds a search with other settings.
    """
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    plan = _stages(initial, variables, stages)
    settings = _settings(initial, folds, seeds, seed, plan)
    settings_path = work_dir / "search.json"
    if settings_path.exists():
        old = json.loads(settings_path.read_text())
        if old != settings:
            diff = sorted(k for k in settings.keys() | old.keys() if old.get(k) != settings.get(k))
            there = {k: old.get(k) for k in diff}
            now = {k: settings.get(k) for k in diff}
            raise ValueError(f"{work_dir} holds a search with other settings ({there} there, {now} now); "
                             "use another work_dir.")
    else:
        atomic_write_text(settings_path, json.dumps(settings, indent=1) + "\n")
    archive = TrialArchive(work_dir / "trials.jsonl")
    trajectory = work_dir / "trajectory.jsonl"
    result = local_search(initial, trial_fn, archive, runner, folds, seeds, budget, seed, variables, stages,
                          trajectory, progress)
    digest = result.best.digest()
    trials = {f"{f}/{s}": archive.get(digest, f, s)["score"] for f in settings["folds"] for s in settings["seeds"]}
    summary = {"digest": digest, "score": result.score, "trials": trials, "evaluations": result.evaluations,
               "budget": int(budget), "converged": result.converged,
               **{k: settings[k] for k in ("folds", "seeds", "seed", "stages")},
               "history": [{"evaluation": n, "digest": d, "score": s} for n, d, s in result.history]}
    best = {**result.best.to_dict(), "local_search": summary}
    best_path = atomic_write_text(work_dir / "best.json", json.dumps(best, indent=1) + "\n")
    return SearchResult(result.best, result.score, result.evaluations, result.converged, result.trials_run,
                        result.history, archive.path, trajectory, best_path)
