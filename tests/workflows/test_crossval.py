"""The paper's protocol end to end on the embedded synthetic CT, tiny budgets: search both folds, aggregate,
retrain and evaluate; then two baselines of Table 1 / Table 2 in the same harness."""

from __future__ import annotations

import csv
import json

import pytest

from tests.conftest import BUNDLES
from vnas_monai.spaces.vnas.encoding import Architecture
from vnas_monai.workflows.ablation import ablation, variant_overrides
from vnas_monai.workflows.crossval import crossval

NIH = str(BUNDLES / "vnas_nih")
TINY = dict(
    init_filters=4,
    roi_size=[32, 32, 32],
    num_samples=2,
    epoch_length=1,
    num_workers=0,
    device="cpu",
    precision="fp32",
    phantom_cases=6,
    infer_roi_size=[32, 32, 32],
    search__max_epochs=2,
    search__arch_warmup_epochs=1,
    train__max_epochs=1,
)


@pytest.mark.slow
def test_crossval_runs_every_stage_and_skips_finished_ones(tmp_path, capsys):
    work = tmp_path / "work"
    summary = crossval(NIH, str(work), num_folds=2, **TINY)
    arch = Architecture.load(work / "arch.json")
    assert arch.meta["aggregated_from"] and arch.probabilities is not None
    for k in (0, 1):
        assert json.loads((work / f"fold{k}" / "search" / "arch.json").read_text())["complete"]
        assert (work / f"fold{k}" / "train" / "model.pt").is_file()
    with (work / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {r["case"].split("/")[0] for r in rows} == {"fold0", "fold1"}
    assert summary["num_cases"] == 6 and len(summary["classes"]) == 1  # both folds' S_test, one foreground class
    assert "cross-validation" in (work / "summary.md").read_text()
    mtime = (work / "fold0" / "train" / "model.pt").stat().st_mtime
    crossval(NIH, str(work), num_folds=2, stages=("train",), **TINY)
    assert (work / "fold0" / "train" / "model.pt").stat().st_mtime == mtime, "a finished stage was rerun"


def test_crossval_refuses_misspelt_keys_before_running(tmp_path):
    with pytest.raises(ValueError, match="init_filter"):
        crossval(NIH, str(tmp_path), num_folds=2, init_filter=4)
    with pytest.raises(ValueError, match="unknown stages"):
        crossval(NIH, str(tmp_path), stages=("serch",))
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_ablation_rows_for_a_manual_choice_and_unet(tmp_path):
    work = tmp_path / "work"
    results = ablation(NIH, str(work), num_folds=2, variants=["p3d/2d", "unet"], folds=[0], **TINY)
    assert set(results) == {"p3d/2d", "unet"}
    table = (work / "ablation" / "table.md").read_text()
    assert "| P3D/2D | manual |" in table and "| UNet | 3D |" in table
    assert Architecture.load(work / "ablation" / "p3d-2d" / "arch.json").codes == [2] * 16 + [0] * 5


def test_variant_overrides():
    assert variant_overrides("mix")["network_def"]["mix"] is True
    assert variant_overrides("vnet")["network_def"]["_target_"] == "VNet"
    assert variant_overrides("2d/3d") == {}
    with pytest.raises(ValueError, match="unknown baseline"):
        variant_overrides("resnet")
