"""MB-NAS's local search (Bosma et al. 2022, §2.3) on a toy space: first improvement per variable, seeded orders and
tie-breaks, the budget, the §2.4 restrictions, deduplication, and the files of ``run_local_search``."""

from __future__ import annotations

import json
import random
from functools import partial

import pytest

from tests.strategies.toy import NamedToy, Toy, read_calls, separable, toy_trial
from vnas_monai.spaces.protocol import VariableEncoding, neighbours_by_variable
from vnas_monai.strategies import TrialArchive, TrialError, local_search, read_jsonl, run_local_search

#: per variable, the first better option is not the best one: "keep the best" is visible
TABLE = ((0, 1, 3), (0, 2, 1), (1, 0, 4))
OPTIMUM = (2, 1, 2)
FOLDS, SEEDS = (0, 1), (0, 1)
OFFSET = 0.1875  # mean of 0.25 * fold + 0.125 * seed over FOLDS x SEEDS


def _search(tmp_path, initial=None, table=TABLE, name="run", **kwargs):
    calls = tmp_path / f"{name}.calls"
    kwargs = {"folds": FOLDS, "seeds": SEEDS, "seed": 0, "progress": False, **kwargs}
    trial = partial(toy_trial, landscape=separable(table), calls=str(calls))
    result = local_search(initial or Toy((0,) * len(table)), trial, TrialArchive(tmp_path / f"{name}.jsonl"),
                          trajectory=tmp_path / f"{name}.trajectory.jsonl", **kwargs)
    return result, read_jsonl(tmp_path / f"{name}.trajectory.jsonl"), read_calls(calls)


def _steps(trajectory):
    return [r for r in trajectory if r["event"] == "step"]


def test_separable_score_reaches_its_optimum_by_first_improvement(tmp_path):
    result, trajectory, calls = _search(tmp_path, seed=3)
    assert result.best.values == OPTIMUM and result.converged
    assert result.score == sum(row[v] for row, v in zip(TABLE, OPTIMUM)) + OFFSET
    # pass 1 visits the variables in the seed's order and moves after each one to its best option; pass 2 finds
    # nothing; the last variable of pass 1 costs nothing in pass 2 (its neighbours were scored): 1 + 3 x 2 + 2 x 2
    order = ["x0", "x1", "x2"]
    random.Random(3).shuffle(order)
    steps = _steps(trajectory)
    assert [(s["pass"], s["variable"]) for s in steps[:3]] == [(1, n) for n in order]
    assert sorted(s["variable"] for s in steps[3:]) == sorted(order) and {s["pass"] for s in steps[3:]} == {2}
    for step in steps[:3]:
        i = int(step["variable"][1:])
        assert step["improved"] and step["chosen"] == OPTIMUM[i]
        assert [o["option"] for o in step["options"]] == [v for v in range(3) if v != 0]
    assert all(not s["improved"] and s["chosen"] is None for s in steps[3:])
    # first improvement: each variable's neighbourhood is around the encoding the previous step moved to
    assert [s["from"]["digest"] for s in steps[1:]] == [s["digest"] for s in steps[:-1]]
    assert trajectory[0]["event"] == "start" and trajectory[-1] == {
        "event": "end", "digest": result.best.digest(), "score": result.score, "evaluations": 11, "converged": True}
    assert result.evaluations == 11 and len(calls) == 11 * 4 == len(set(calls))  # no trial twice
    assert [n for n, _, _ in result.history] == list(range(1, 12))
    assert max(s for _, _, s in result.history) == result.score
    # the order is the seed's: other seeds visit in other orders, to the same optimum
    orders = {tuple(s["variable"] for s in _steps(_search(tmp_path, seed=k, name=f"s{k}")[1])[:3]) for k in range(6)}
    assert len(orders) > 1


def test_ties_are_broken_by_the_seed_and_a_tie_with_the_current_is_no_move(tmp_path):
    picks = set()
    for seed in range(8):
        result, trajectory, _ = _search(tmp_path, Toy((0,)), table=((0, 5, 5),), seed=seed, name=f"t{seed}")
        # one variable: shuffling it draws nothing, so the tie-break is the generator's first draw
        assert result.best.values == ([1, 2][random.Random(seed).randrange(2)],)
        steps = _steps(trajectory)
        assert steps[0]["improved"] and not steps[1]["improved"]  # the other 5 ties the current: kept
        picks.add(result.best.values)
    assert picks == {(1,), (2,)}
    again, _, _ = _search(tmp_path, Toy((0,)), table=((0, 5, 5),), seed=5, name="again")
    assert again.best.values == ([1, 2][random.Random(5).randrange(2)],)


def test_budget_is_respected(tmp_path):
    result, trajectory, calls = _search(tmp_path, budget=4, seed=3)
    assert result.evaluations == 4 and not result.converged
    assert len({d for d, _, _ in calls}) == 4 and len(calls) == 4 * len(FOLDS) * len(SEEDS)
    steps = _steps(trajectory)
    assert len(steps) == 2 and len(steps[1]["options"]) == 1 and len(steps[1]["skipped"]) == 1
    assert trajectory[-1]["evaluations"] == 4 and not trajectory[-1]["converged"]
    only, _, calls = _search(tmp_path, budget=1, name="one")
    assert only.best.values == (0, 0, 0) and only.evaluations == 1 and len(calls) == 4
    with pytest.raises(ValueError, match="budget"):
        _search(tmp_path, budget=0, name="zero")


def test_restrictions_and_stages(tmp_path):
    """Macro/Micro-NAS as the variables allowed to change, Bilevel-NAS as stages (§2.4)."""
    result, trajectory, _ = _search(tmp_path, variables={"x2", "x0"}, name="restricted")
    assert result.best.values == (2, 0, 2) and result.converged
    assert {s["variable"] for s in _steps(trajectory)} == {"x0", "x2"}
    result, trajectory, _ = _search(tmp_path, stages=[["x1"], ["x2", "x0"]], name="bilevel")
    assert result.best.values == OPTIMUM and result.converged
    steps = _steps(trajectory)
    assert [(s["stage"], s["pass"], s["variable"]) for s in steps[:2]] == [(0, 1, "x1"), (0, 2, "x1")]
    assert {s["variable"] for s in steps[2:]} == {"x0", "x2"} and {s["stage"] for s in steps[2:]} == {1}
    assert trajectory[0]["stages"] == [["x1"], ["x0", "x2"]]  # in the space's order
    assert result.evaluations == 1 + 2 + 4 + 2
    with pytest.raises(ValueError, match=r"variables \['y'\] are not among \['x0', 'x1', 'x2'\]"):
        _search(tmp_path, variables=["y"], name="bad")
    with pytest.raises(ValueError, match=r"stage variables \['x1'\] are not among \['x0'\]"):
        _search(tmp_path, variables=["x0"], stages=[["x1"]], name="bad")


def test_named_variables_and_the_neighbours_fallback_search_alike(tmp_path):
    """A space's validity rule (sum <= 3): refused options are never trained; ``variables()``/``with_value`` and the
    protocol's grouping of ``neighbours()`` give the same search."""
    named, fallback = NamedToy((0, 0, 0), max_sum=3), Toy((0, 0, 0), max_sum=3)
    assert isinstance(named, VariableEncoding) and not isinstance(fallback, VariableEncoding)
    groups = {k: [(o, n.digest()) for o, n in v] for k, v in neighbours_by_variable(named).items()}
    assert groups == {k: [(o, n.digest()) for o, n in v] for k, v in neighbours_by_variable(fallback).items()}
    assert groups["x0"] == [(1, Toy((1, 0, 0)).digest()), (2, Toy((2, 0, 0)).digest())]
    a, trajectory_a, calls = _search(tmp_path, named, name="named", seed=1)
    b, trajectory_b, _ = _search(tmp_path, fallback, name="fallback", seed=1)
    # the rule's two optima, (2, 1, 0) and (0, 1, 2), both score 6
    assert a.best.values == b.best.values in {(2, 1, 0), (0, 1, 2)} and a.score == 6 + OFFSET
    assert trajectory_a == trajectory_b
    assert any(len(s["options"]) < 2 for s in _steps(trajectory_a))  # refused options are not tried
    assert all(sum(r["encoding"][f"x{i}"] for i in range(3)) <= 3 for r in TrialArchive(tmp_path / "named.jsonl"))
    assert len(calls) == len(set(calls))


def test_fallback_groups_a_real_space_by_cell():
    from vnas_monai.spaces.vnas.encoding import Architecture

    arch = Architecture.preset("nih")
    groups = neighbours_by_variable(arch)
    assert len(groups) == 21 and all(len(v) == 2 for v in groups.values())
    assert [o for o, _ in groups["encoder.0+paper.encoder"]] == [c for c in range(3) if c != arch.codes[0]]
    assert {n.digest() for v in groups.values() for _, n in v} == {n.digest() for n in arch.neighbours()}


def test_run_local_search_files_and_rerun(tmp_path, capsys):
    calls = tmp_path / "calls"
    trial = partial(toy_trial, landscape=separable(TABLE), calls=str(calls))
    kwargs = dict(folds=FOLDS, seeds=SEEDS, budget=20, seed=2)
    result = run_local_search(Toy((0, 0, 0)), trial, tmp_path / "work", **kwargs)
    assert "local search" in capsys.readouterr().err  # the progress bar over the budget
    best = json.loads(result.best_path.read_text())
    assert Toy.from_dict(best).values == OPTIMUM and best["local_search"]["score"] == result.score
    assert best["local_search"]["trials"] == {f"{f}/{s}": 9 + 0.25 * f + 0.125 * s for f in FOLDS for s in SEEDS}
    assert len(best["local_search"]["history"]) == 11 and best["local_search"]["converged"]
    assert len(TrialArchive(result.archive_path)) == 44
    trajectory = result.trajectory_path.read_text()
    # a rerun in the same folder trains nothing and rebuilds the same trajectory
    again = run_local_search(Toy((0, 0, 0)), trial, tmp_path / "work", progress=False, **kwargs)
    assert again.trials_run == 0 and again.best.values == OPTIMUM and len(read_calls(calls)) == 44
    assert again.trajectory_path.read_text() == trajectory
    with pytest.raises(ValueError, match="other settings"):
        run_local_search(Toy((0, 0, 0)), trial, tmp_path / "work", progress=False, **{**kwargs, "seed": 9})


def test_bad_trial_results_are_named(tmp_path):
    for bad in (float("nan"), float("inf"), "high"):
        with pytest.raises(TrialError, match="not a finite number"):
            local_search(Toy((0,)), partial(_result, score=bad), TrialArchive(tmp_path / "a.jsonl"), progress=False)
    assert not (tmp_path / "a.jsonl").exists()  # nothing archived from a bad result
    with pytest.raises(TrialError, match="must return a dict with a 'score'"):
        local_search(Toy((0,)), partial(_result, score=None), TrialArchive(tmp_path / "b.jsonl"), progress=False)


def _result(encoding, fold, seed, score):
    return {"dice": 0.5} if score is None else {"score": score}
