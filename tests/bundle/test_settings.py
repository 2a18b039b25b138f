"""Settings travel with a training run: inference, evaluation and export read ``settings.json`` (else the weights'
shapes) beside the checkpoint, refuse a contradicting explicit value naming both, and a checkpoint of another width
fails in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser

from tests.conftest import BUNDLES
from vnas_monai.bundle import load_weights, save_run_settings
from vnas_monai.bundle.settings import check_run_settings, load_run_settings, resolve_checkpoint, stored_setting
from vnas_monai.export import export_bundle
from vnas_monai.spaces.vnas import VNASNet
from vnas_monai.spaces.vnas.encoding import Architecture

#: a hippocampus-like run (MRI, 3 classes, no HU window) trained from the NIH bundle at a tiny width
HIPPO = dict(in_channels=1, num_classes=3, init_filters=4, class_names=["background", "anterior", "posterior"],
             intensity_clip=None, spacing=None, roi_size=[32, 32, 32], infer_roi_size=[32, 32, 32], flip_axes=[0])


@pytest.fixture()
def run_dir(tmp_path) -> Path:
    """``<tmp>/work/fold0/train`` with tiny untrained weights and their settings.json."""
    run = tmp_path / "work" / "fold0" / "train"
    run.mkdir(parents=True)
    arch = Architecture.preset("nih")
    torch.manual_seed(0)
    net = VNASNet(3, in_channels=1, out_channels=3, architecture=arch, init_filters=4)
    torch.save(net.state_dict(), run / "model.pt")
    save_run_settings(run, architecture=arch, **HIPPO)
    return run


def _parser(stage: str, **overrides) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config(str(BUNDLES / "vnas_nih" / f"{stage}.json"))
    parser.update(overrides)
    return parser


@pytest.mark.parametrize("stage", ["inference", "evaluate"])
def test_stages_read_the_run_settings(run_dir, stage):
    parser = _parser(stage, checkpoint=str(run_dir / "model.pt"))
    for key in ("init_filters", "num_classes", "intensity_clip", "spacing", "in_channels"):
        assert parser.get_parsed_content(key) == HIPPO[key], key
    assert parser.get_parsed_content("infer_roi_size") == HIPPO["infer_roi_size"]
    net = parser.get_parsed_content("network")  # loads the weights: width and classes from settings.json
    assert net.head.up.bias.shape == (3,)
    expected = run_dir.parent / ("infer" if stage == "inference" else "eval")
    assert parser.get_parsed_content("output_dir") == str(expected)
    assert parser.get_parsed_content("check_keys") is True
    parser.get_parsed_content("initialize")  # includes the settings check: agrees
    if stage == "evaluate":
        assert parser.get_parsed_content("class_names") == HIPPO["class_names"]


@pytest.mark.parametrize("key, value, stored", [("init_filters", 64, 4), ("num_classes", 2, 3),
                                                ("intensity_clip", [-100, 240], None)])
def test_contradicting_value_is_refused_naming_both(run_dir, key, value, stored):
    parser = _parser("inference", checkpoint=str(run_dir), **{key: value})
    with pytest.raises(Exception) as info:
        parser.get_parsed_content("initialize")
    cause = info.value.__cause__ or info.value
    assert isinstance(cause, ValueError)
    assert f"{key}={value!r} contradicts the training run of {run_dir}" in str(cause)
    assert f"trained with {key}={stored!r}" in str(cause) and "settings.json" in str(cause)


def test_weights_without_settings_give_their_width(tmp_path):
    net = VNASNet(3, in_channels=2, out_channels=3, architecture="3d", init_filters=8)
    torch.save(net.state_dict(), tmp_path / "lone.pt")
    source, settings = load_run_settings(tmp_path / "lone.pt")
    assert settings == {"init_filters": 8, "in_channels": 2, "num_classes": 3} and source == str(tmp_path / "lone.pt")
    assert stored_setting(tmp_path / "lone.pt", "spacing", [1.0, 1.0, 1.0]) == [1.0, 1.0, 1.0]
    assert stored_setting(tmp_path / "missing.pt", "init_filters", 64) == 64
    assert check_run_settings(tmp_path / "lone.pt", init_filters=8.0, in_channels=2, spacing=[2, 2, 2]) is True
    with pytest.raises(ValueError, match="in_channels=1 contradicts"):
        check_run_settings(tmp_path / "lone.pt", in_channels=1)


def test_other_width_fails_in_one_line(run_dir):
    net = VNASNet(3, in_channels=1, out_channels=3, architecture="nih", init_filters=64)
    with pytest.raises(ValueError) as info:
        load_weights(net, run_dir / "model.pt")
    message = str(info.value)
    assert "\n" not in message and len(message) < 400, message
    assert "trained with init_filters=4 (the network was built with init_filters=64)" in message


def test_run_folder_resolves_to_its_weights(run_dir, tmp_path):
    assert resolve_checkpoint(run_dir) == run_dir / "model.pt"
    with pytest.raises(FileNotFoundError, match="holds no model.pt"):
        resolve_checkpoint(tmp_path)


def test_export_needs_only_the_run_folder(run_dir, tmp_path):
    out = Path(export_bundle(str(tmp_path / "exported"), str(run_dir)))
    inference = json.loads((out / "configs" / "inference.json").read_text())
    for key in ("init_filters", "num_classes", "intensity_clip", "spacing"):
        assert inference[key] == HIPPO[key], key
    assert json.loads((out / "configs" / "train.json").read_text())["flip_axes"] == [0]
    meta = json.loads((out / "configs" / "metadata.json").read_text())
    channels = meta["network_data_format"]["outputs"]["pred"]["channel_def"]
    assert list(channels.values()) == HIPPO["class_names"]
    with pytest.raises(ValueError, match=r"spacing=\[1.0, 1.0, 1.0\] contradicts .* trained with spacing=None"):
        export_bundle(str(tmp_path / "other"), str(run_dir), spacing=[1, 1, 1])
    with pytest.raises(ValueError, match="labels .* contradict the training run"):
        export_bundle(str(tmp_path / "other"), str(run_dir), labels="background,liver,spleen")
    assert not (tmp_path / "other").exists()
