"""The paper's comparison (Bosma et al., SPIE 2022, Table 1 and Fig. 2) end to end at tiny sizes on phantoms: the
three restricted searches from the U-Net, every final network and the references retrained once per seed and
evaluated on held-out volumes, the table's means and seed spread, and a rerun that trains no search trial again."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vnas_monai.data import load_datalist, make_phantom_dataset
from vnas_monai.spaces.mbnas.compare import run_comparison
from vnas_monai.spaces.mbnas.trial import SliceTrial


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    cases = load_datalist(make_phantom_dataset(tmp_path_factory.mktemp("ph") / "data", num_cases=6,
                                               shape=(32, 32, 8)))
    return cases[:4], cases[4:]


def test_comparison_retrains_every_network_per_seed_and_resumes(split, tmp_path):
    train, test = split
    trial = SliceTrial(train, num_folds=2, patch_size=(32, 32), batch_size=8, epochs=2, steps_per_epoch=4,
                       init_channels=8, learning_rate=1e-2, intensity_clip=(-100, 240), device="cpu")
    kwargs = dict(budgets={"mbnas": 2, "micro": 1, "macro": 1}, folds=(0, 1), seeds=(0,), retrain_epochs=6,
                  title="tiny", num_nodes=6, max_downsamplings=2, retrain_seeds=(0, 1))
    rows = run_comparison(trial, test, tmp_path, **kwargs)
    assert [r["method"] for r in rows] == ["MB-NAS", "Micro-NAS", "Macro-NAS", "U-Net", "ResU-Net"]
    results = json.loads((tmp_path / "results.json").read_text())
    for row in rows:
        runs = results[row["method"]]["runs"]
        assert results[row["method"]]["retrain_seeds"] == [0, 1] and len(runs) == 2
        assert all(len(r["cases"]) == len(test) for r in runs)
        dice = [r["dice"] for r in runs if r["dice"] is not None]  # None: no case with a defined Dice
        assert row["dice"] == (pytest.approx(np.mean(dice)) if dice else None)
        assert row["dice_std"] == (pytest.approx(np.std(dice)) if len(dice) == 2 else None)
    assert rows[0]["evaluations"] <= 2 and rows[3]["evaluations"] is None
    table = (tmp_path / "table.md").read_text()
    assert "DSC std (seeds)" in table and "retraining seeds [0, 1]" in table and "folds [0, 1] x seeds [0]" in table
    assert (tmp_path / "history.png").read_bytes()[:4] == b"\x89PNG"
    archives = {p: p.read_text() for p in tmp_path.glob("search_*/trials.jsonl")}
    assert len(archives) == 3
    again = run_comparison(trial, test, tmp_path, **kwargs)  # the searches resume: no trial is trained again
    assert {p: p.read_text() for p in archives} == archives
    assert [r["search_score"] for r in again] == [r["search_score"] for r in rows]


def test_searches_in_separate_calls_then_one_call_retrains(split, tmp_path):
    # --search_only: two processes search different spaces into one folder; the last call reuses both archives
    train, test = split
    trial = SliceTrial(train, num_folds=2, patch_size=(32, 32), batch_size=8, epochs=1, steps_per_epoch=2,
                       init_channels=8, learning_rate=1e-2, intensity_clip=(-100, 240), device="cpu")
    kwargs = dict(folds=(0,), seeds=(0,), retrain_epochs=1, title="split", num_nodes=6, max_downsamplings=2)
    assert run_comparison(trial, test, tmp_path, budgets={"micro": 1}, search_only=True, **kwargs) == []
    assert run_comparison(trial, test, tmp_path, budgets={"macro": 1}, search_only=True, **kwargs) == []
    assert not (tmp_path / "table.md").exists() and not (tmp_path / "results.json").exists()
    archives = {p: p.read_text() for p in tmp_path.glob("search_*/trials.jsonl")}
    assert len(archives) == 2
    rows = run_comparison(trial, test, tmp_path, budgets={"micro": 1, "macro": 1}, **kwargs)
    assert [r["method"] for r in rows] == ["Micro-NAS", "Macro-NAS", "U-Net", "ResU-Net"]
    assert {p: p.read_text() for p in archives} == archives and (tmp_path / "table.md").exists()
