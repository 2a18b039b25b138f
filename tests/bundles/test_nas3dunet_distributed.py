"""``torchrun`` with the NAS-3D-U-Net overlays (``multi_gpu_search.json``, ``multi_gpu_train.json``) on CPU (gloo), two
processes on the 4-channel phantom: the search stops by its rule and writes one genotype, the retraining one model,
from rank 0 only. 15 phantoms in 3 folds: S_val has 2 cases, one per rank (MONAI's DistributedSampler needs
at least one)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import BUNDLES, REPO

BUNDLE = BUNDLES / "nas3dunet_brats"
TINY = ["--phantom_shape", "[32,32,32]", "--phantom_cases", "15", "--num_folds", "3", "--roi_size", "[32,32,32]",
        "--epoch_length", "2", "--num_workers", "0", "--precision", "fp32"]


def _torchrun(stage: list[str], files: list[str], work: str) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    env.pop("CUDA_VISIBLE_DEVICES", None)
    config = "[" + ",".join(f"'{BUNDLE / f}'" for f in files) + "]"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
           "monai.bundle", "run", *stage, "--config_file", config, "--work_dir", work, *TINY]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"


@pytest.mark.slow
def test_two_process_search_and_retraining(tmp_path):
    work = str(tmp_path / "run")
    _torchrun(["search", "--max_epochs", "2", "--stop_n_c", "2"], ["search.json", "multi_gpu_search.json"], work)
    search = tmp_path / "run" / "fold0" / "search"
    counts = json.loads((search / "genotype_counts.json").read_text())
    assert [e for e, _ in counts["history"]] == [1, 2]
    from vnas_monai.spaces.nas3dunet import Genotype

    assert Genotype.load(search / "genotype.json").digest() in counts["counts"]
    _torchrun(["--max_epochs", "1", "--val_interval", "1"], ["train.json", "multi_gpu_train.json"], work)
    train = tmp_path / "run" / "fold0" / "train"
    assert (train / "model.pt").is_file() and json.loads((train / "settings.json").read_text())["layout"] == "brats"
