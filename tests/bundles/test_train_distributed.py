"""``torchrun`` retraining with ``bundles/vnas_nih/multi_gpu_train.json`` on CPU (gloo), against one process.

As for the search (``test_search_distributed.py``): two processes with a per-rank batch of 1 case see, through
``SeededSampler``/``SeededDataset``, the crops one process sees with a batch of 2, and DDP averages the gradients, so
the two runs end with the same weights up to float32 summation order. GroupNorm replaces BatchNorm, whose statistics
are per rank on CPU. Validation is sharded by a ``DistributedSampler`` and MONAI's ``MeanDice`` gathers the ranks.
"""

from __future__ import annotations

import json
import sys

import pytest
import torch
from monai.utils import set_determinism

from tests.bundles.test_search_distributed import _config_list, _run
from tests.conftest import BUNDLES
from vnas_monai.spaces.vnas import VNASNet
from vnas_monai.spaces.vnas.encoding import Architecture

TRAIN = str(BUNDLES / "vnas_nih" / "train.json")
MULTI = str(BUNDLES / "vnas_nih" / "multi_gpu_train.json")
WEIGHT_TOL = 1e-2  # ||w_2proc - w_1proc|| / ||w_1proc - w_init||: float32 summation order only

TINY = [
    "--init_filters", "4", "--roi_size", "[32,32,32]", "--infer_roi_size", "[32,32,32]", "--max_epochs", "2",
    "--epoch_length", "2", "--num_samples", "2", "--num_workers", "0", "--precision", "fp32", "--num_folds", "1",
    "--spacing", "[3.0,3.0,3.0]", "--seed", "3", "--val_interval", "1", "--arch", "nih", "--device", "cpu",
]


def _six_cases(root, source):
    """The 3-case CT dataset with each case twice: S_val gets 2 cases, one per rank."""
    meta = json.loads((source / "dataset.json").read_text())
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    training = []
    for i, case in enumerate(meta["training"] * 2):
        for key, folder in (("image", "imagesTr"), ("label", "labelsTr")):
            (root / folder / f"case_{i:03d}.nii.gz").symlink_to((source / case[key]).resolve())
        training.append({"image": f"./imagesTr/case_{i:03d}.nii.gz", "label": f"./labelsTr/case_{i:03d}.nii.gz"})
    (root / "dataset.json").write_text(json.dumps({**meta, "numTraining": len(training), "training": training}))
    return root


@pytest.mark.slow
def test_two_process_gloo_retraining_matches_one_process(tmp_path, pancreas_ct_msd):
    dataset = _six_cases(tmp_path / "data", pancreas_ct_msd)
    group_norm = tmp_path / "group_norm.json"
    group_norm.write_text(json.dumps({"network_def#norm": ["group", {"num_groups": 1}]}))
    ddp_out, single_out = tmp_path / "ddp" / "train", tmp_path / "single" / "train"
    common = ["--dataset_dir", str(dataset), *TINY]
    _run([
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "monai.bundle", "run", "--config_file", _config_list(TRAIN, MULTI, str(group_norm)),
        "--work_dir", str(ddp_out.parent), "--output_dir", str(ddp_out), "--batch_size", "1", *common,
    ])
    _run([
        sys.executable, "-m", "monai.bundle", "run", "--config_file", _config_list(TRAIN, str(group_norm)),
        "--work_dir", str(single_out.parent), "--output_dir", str(single_out), "--batch_size", "2", *common,
    ])

    for out in (ddp_out, single_out):
        for name in ("model.pt", "model_final.pt", "checkpoint_final.pt"):
            assert (out / name).is_file(), f"{out / name} was not written"
        assert Architecture.load(out / "arch.json") == Architecture.preset("nih")
    ddp = torch.load(ddp_out / "model_final.pt", weights_only=True)
    single = torch.load(single_out / "model_final.pt", weights_only=True)
    assert not any(k.startswith("module.") for k in ddp), "model_final.pt holds the DDP wrapper's keys"
    assert ddp.keys() == single.keys()
    resumable = torch.load(ddp_out / "checkpoint_final.pt", weights_only=True)
    assert resumable["trainer"]["iteration"] == 4 and not any(k.startswith("module.") for k in resumable["network"])

    # the initial weights (the bundle seeds right before building the network)
    set_determinism(seed=3)
    init = VNASNet(architecture="nih", out_channels=2, init_filters=4, norm=("group", {"num_groups": 1})).state_dict()
    set_determinism(seed=None)
    keys = [k for k in single if single[k].is_floating_point()]
    change = torch.cat([(single[k] - init[k]).flatten() for k in keys]).norm()
    diff = torch.cat([(ddp[k] - single[k]).flatten() for k in keys]).norm()
    assert change > 0 and diff <= WEIGHT_TOL * change, f"weights: runs differ by {diff:g}, the steps moved {change:g}"

    # both ranks validated their shard and rank 0 alone wrote the outputs, atomically
    assert not list(ddp_out.glob(".*.tmp"))
    logs = sorted(p.name for p in (ddp_out / "tensorboard").iterdir())
    assert len(logs) >= 1 and all(name.startswith("events") for name in logs)
