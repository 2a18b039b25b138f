"""Fault tolerance of the retraining bundle: a SIGKILLed ``train.json`` resumes on the uninterrupted trajectory."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from tests.bundles.test_search_faults import _run, _run_and_kill_mid_epoch
from tests.conftest import BUNDLES
from vnas_monai.engine import latest_checkpoint

TRAIN = str(BUNDLES / "vnas_nih" / "train.json")
ARGS = [
    "--init_filters", "4", "--roi_size", "[32,32,32]", "--infer_roi_size", "[32,32,32]", "--max_epochs", "3",
    "--epoch_length", "2", "--num_samples", "2", "--num_workers", "0", "--amp", "False", "--num_folds", "1",
    "--spacing", "[3.0,3.0,3.0]", "--seed", "5", "--device", "cpu", "--arch", "p3d", "--val_interval", "1",
]


def _command(dataset: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "monai.bundle", "run", "--config_file", TRAIN, "--dataset_dir", str(dataset),
            "--work_dir", str(out.parent), "--output_dir", str(out), *ARGS]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_gives_the_uninterrupted_weights(tmp_path, pancreas_ct_msd):
    reference, killed = tmp_path / "reference" / "train", tmp_path / "killed" / "train"
    _run(_command(pancreas_ct_msd, reference))
    # "Epoch: 2/3, Iter: 1/2" is the middle of epoch 2: checkpoint_epoch=1.pt exists, epoch 2 lives only in memory
    log = _run_and_kill_mid_epoch(_command(pancreas_ct_msd, killed), "Epoch: 2/3, Iter: 1/2")
    assert "Epoch: 2/3, Iter: 2/2" not in log
    assert latest_checkpoint(killed).endswith("checkpoint_epoch=1.pt")
    assert not (killed / "model_final.pt").exists()

    resumed_log = _run(_command(pancreas_ct_msd, killed))  # same command: resume is the default
    assert "checkpoint_epoch=1.pt" in resumed_log, "the second run did not resume from the epoch-1 checkpoint"
    ref = torch.load(reference / "model_final.pt", weights_only=True)
    got = torch.load(killed / "model_final.pt", weights_only=True)
    assert ref.keys() == got.keys()
    for key, value in ref.items():
        assert torch.equal(got[key], value), f"{key} differs after the resume"
    ref_state = torch.load(reference / "checkpoint_final.pt", weights_only=True)
    got_state = torch.load(killed / "checkpoint_final.pt", weights_only=True)
    assert got_state["trainer"]["iteration"] == ref_state["trainer"]["iteration"] == 6
    assert got_state["lr_scheduler"] == ref_state["lr_scheduler"]
    assert got_state["best_model"] == {**ref_state["best_model"], "_saved": got_state["best_model"]["_saved"]}
    assert [s[0] for s in got_state["best_model"]["_saved"]] == [s[0] for s in ref_state["best_model"]["_saved"]]
