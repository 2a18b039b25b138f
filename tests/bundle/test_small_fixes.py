"""The small stumbles of a first run: figure file modes, duplicate final checkpoints, MONAI's Orientationd
deprecation warning, the probability figure's labels, and an undecided demo search presented as a finding."""

from __future__ import annotations

import json
import os
import stat
import warnings

import pytest
import torch
from monai.bundle import ConfigParser

from tests.conftest import BUNDLES
from vnas_monai.bundle import prune_checkpoints, report_search
from vnas_monai.engine.plots import choice_label, plot_probability_history
from vnas_monai.spaces.vnas import VNASSupernet
from vnas_monai.spaces.vnas.encoding import Architecture
from vnas_monai.spaces.vnas.figures import plot_architecture


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_figures_get_the_usual_file_mode(tmp_path):
    umask = os.umask(0o022)
    try:
        plot_architecture(Architecture.preset("nih"), tmp_path / "architecture.png")
        row = {"encoder": [[1 / 3] * 3] * 16, "decoder": [[1 / 3] * 3] * 5}
        plot_probability_history([dict(row, epoch=1), dict(row, epoch=2)], tmp_path / "arch_probabilities.png",
                                 Architecture.layout())
    finally:
        os.umask(umask)
    assert _mode(tmp_path / "architecture.png") == 0o644
    assert _mode(tmp_path / "arch_probabilities.png") == 0o644


def test_identical_epoch_checkpoint_is_pruned(tmp_path):
    torch.save({"w": torch.ones(3)}, tmp_path / "checkpoint_final.pt")
    (tmp_path / "checkpoint_epoch=4.pt").write_bytes((tmp_path / "checkpoint_final.pt").read_bytes())
    torch.save({"w": torch.zeros(3)}, tmp_path / "checkpoint_epoch=3.pt")
    assert prune_checkpoints(tmp_path) == [str(tmp_path / "checkpoint_epoch=4.pt")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_epoch=3.pt", "checkpoint_final.pt"]
    for stage in ("search", "train"):
        run = json.loads((BUNDLES / "vnas_nih" / f"{stage}.json").read_text())["search" if stage == "search" else "run"]
        assert "$vnas_monai.bundle.prune_checkpoints(@output_dir)" in run, stage


@pytest.mark.parametrize("stage", ["search", "train", "evaluate", "inference"])
def test_no_orientation_deprecation_warning(stage):
    parser = ConfigParser()
    parser.read_config(str(BUNDLES / "vnas_nih" / f"{stage}.json"))
    key = "preprocessing" if stage != "inference" else "preprocessing#transforms"
    items = parser.get(key)
    index = next(i for i, t in enumerate(items) if t["_target_"] == "Orientationd")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        parser.get_parsed_content(f"{key}#{index}")


def test_probability_labels_say_undecided_near_uniform():
    assert choice_label([0.34, 0.33, 0.33]) == "undecided"
    assert choice_label([0.2, 0.5, 0.3]) == "3D"
    assert choice_label([0.40, 0.30, 0.30]) == "2D"


def test_demo_search_is_reported_undecided(capsys):
    net = VNASSupernet(in_channels=1, out_channels=2, init_filters=4)
    message = report_search(net, "runs/demo/fold0/search", arch_warmup_epochs=2, max_epochs=4)
    assert message.startswith("architecture undecided") and "searched architecture" not in message
    assert "2 epoch(s) of architecture updates after 2 warm-up epoch(s)" in message
    net.set_architecture("nih")
    message = report_search(net, "out", arch_warmup_epochs=2, max_epochs=4)
    assert message.startswith("searched architecture") and "[0 0 0, 0 0 0 1, 2 0 2 0 2 2, 0 0 0]" in message
    assert capsys.readouterr().out.count("\n") == 2
