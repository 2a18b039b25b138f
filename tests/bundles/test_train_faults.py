"""Fault tolerance of the retraining bundle: a SIGKILLed ``train.json`` resumes on the uninterrupted trajectory."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from tests.bundles.test_search_faults import run_killed_and_resumed
from tests.conftest import BUNDLES

TRAIN = str(BUNDLES / "vnas_nih" / "train.json")
ARGS = [
    "--init_filters", "4", "--roi_size", "[32,32,32]", "--infer_roi_size", "[32,32,32]", "--max_epochs", "3",
    "--epoch_length", "2", "--num_samples", "2", "--num_workers", "0", "--precision", "fp32", "--num_folds", "1",
    "--spacing", "[3.0,3.0,3.0]", "--seed", "5", "--device", "cpu", "--arch", "p3d", "--val_interval", "1",
]


def _command(dataset: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "monai.bundle", "run", "--config_file", TRAIN, "--dataset_dir", str(dataset),
            "--work_dir", str(out.parent), "--output_dir", str(out), *ARGS]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_gives_the_uninterrupted_weights(tmp_path, pancreas_ct_msd):
    reference, killed = tmp_path / "reference" / "train", tmp_path / "killed" / "train"

    def check_interrupted() -> None:
        assert not (killed / "model_final.pt").exists()

    run_killed_and_resumed(_command(pancreas_ct_msd, reference), _command(pancreas_ct_msd, killed), killed,
                           check_interrupted)
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
