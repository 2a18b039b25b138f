"""MONAI's bundle tools on every V-NAS bundle (``verify_net_in_out``, ``ckpt_export``, the model-zoo keys that MONAI
Label reads), and one dataset driven through all four stages (search, train, inference, evaluate) with one set of
overrides, on the real DICOM series of ``../shared/data/totalseg_ct``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from monai.bundle import ConfigParser

from tests.bundles.test_inference_bundle import check_same_grid
from tests.bundles.test_search_bundle import run_search
from tests.bundles.test_train_bundle import TINY, check_train_outputs, random_checkpoint, run_stage
from tests.conftest import BUNDLES, REPO
from vnas_monai.bundle import case_name
from vnas_monai.spaces.vnas import VNASNet
from vnas_monai.spaces.vnas.encoding import Architecture

BUNDLE_PRESETS = {"vnas_nih": ("nih", 2), "vnas_msd_lung": ("msd_lung", 2), "vnas_msd_pancreas": ("msd_pancreas", 3)}
STAGES = ("search", "train", "inference", "evaluate")


def monai_bundle(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "monai.bundle", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("bundle", sorted(BUNDLE_PRESETS))
def test_every_stage_defines_the_shared_and_model_zoo_keys(bundle):
    shared = {"dataset_dir", "output_dir", "work_dir", "fold", "num_folds", "roi_size", "init_filters", "in_channels",
              "num_classes", "intensity_clip", "spacing", "device", "seed", "layout", "datalist_file", "bundle_root"}
    configs = {s: json.loads((BUNDLES / bundle / f"{s}.json").read_text()) for s in STAGES}
    parsed = {}
    for stage, config in configs.items():
        assert shared <= set(config), (stage, shared - set(config))
        # every stage reads the same data the same way
        assert config["datalist_file"] == configs["search"]["datalist_file"]
        parser = ConfigParser(config)
        parser["checkpoint"] = "/no/such/model.pt"  # inference / evaluation: the defaults when no run settings exist
        if "plan_dict" in config:  # search and train: no plan (the default "plan": null), without reading data
            assert config["plan"] is None
            parser["plan_dict"] = None
        keys = ("roi_size", "num_classes", "intensity_clip", "work_dir", "spacing")
        parsed[stage] = {k: parser.get_parsed_content(k) for k in keys}
    assert all(p == parsed["search"] for p in parsed.values()), parsed
    assert {"arch", "val_interval", "run", "network_def", "network"} <= set(configs["train"])
    assert {"dataset", "trainer", "handlers"} <= set(configs["train"]["train"])
    assert "data" in configs["train"]["train"]["dataset"] and "data" in configs["train"]["validate"]["dataset"]
    assert "max_epochs" in configs["train"]["train"]["trainer"]
    for stage in ("inference", "evaluate"):
        assert {"checkpoint", "run", "network_def", "preprocessing", "postprocessing", "inferer", "device"} <= set(
            configs[stage]
        )
    assert configs["evaluate"]["network_def"] == configs["inference"]["network_def"]
    assert configs["evaluate"]["architecture"] == configs["inference"]["architecture"]
    preset, num_classes = BUNDLE_PRESETS[bundle]
    parser = ConfigParser(configs["inference"])
    parser["checkpoint"] = "/no/such/model.pt"
    assert parser.get_parsed_content("architecture") == Architecture.preset(preset)
    assert parser.get_parsed_content("num_classes") == num_classes
    # MONAI Label instantiates these three from inference.json
    assert len(parser.get_parsed_content("preprocessing").transforms) >= 4
    assert len(parser.get_parsed_content("postprocessing").transforms) == 3
    assert parser.get_parsed_content("inferer").roi_size is not None


def check_export(ts, ckpt, preset: str, num_classes: int) -> None:
    exported = torch.jit.load(str(ts), map_location="cpu").eval()
    net = VNASNet(architecture=preset, out_channels=num_classes, init_filters=4)
    net.load_state_dict(torch.load(ckpt, weights_only=True))
    x = torch.randn(2, 1, 32, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(exported(x), net.eval()(x), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("bundle", sorted(BUNDLE_PRESETS))
def test_verify_net_in_out_and_ckpt_export(tmp_path, bundle):
    """MONAI's own ``verify_net_in_out`` (shapes of metadata.json) and ``ckpt_export`` (TorchScript) functions, the
    ones ``python -m monai.bundle`` runs, on every stage's network of every bundle."""
    from monai.bundle import ckpt_export, verify_net_in_out

    preset, num_classes = BUNDLE_PRESETS[bundle]
    bdir = BUNDLES / bundle
    for stage in ("train", "inference"):  # evaluate.json's network_def is inference.json's (checked above)
        verify_net_in_out(net_id="network_def", meta_file=str(bdir / "metadata.json"),
                          config_file=str(bdir / f"{stage}.json"), device="cpu", init_filters=4, work_dir=str(tmp_path))
    ckpt = random_checkpoint(tmp_path / "model.pt", arch=preset, num_classes=num_classes)
    ts = tmp_path / "model.ts"
    ckpt_export(net_id="network_def", filepath=str(ts), ckpt_file=str(ckpt), meta_file=str(bdir / "metadata.json"),
                config_file=str(bdir / "inference.json"), checkpoint=str(ckpt), init_filters=4)
    check_export(ts, ckpt, preset, num_classes)


@pytest.mark.slow
def test_monai_bundle_command_line(tmp_path):
    """The same through ``python -m monai.bundle`` (NIH bundle): the network of the checkpoint's architecture."""
    bdir = BUNDLES / "vnas_nih"
    ckpt = random_checkpoint(tmp_path / "model.pt", arch="msd_lung")
    common = ["--meta_file", str(bdir / "metadata.json"), "--config_file", str(bdir / "inference.json"),
              "--checkpoint", str(ckpt), "--init_filters", "4"]
    result = monai_bundle("verify_net_in_out", "network_def", "--device", "cpu", *common)
    assert result.returncode == 0, result.stdout + result.stderr
    ts = tmp_path / "model.ts"
    result = monai_bundle("ckpt_export", "network_def", "--filepath", str(ts), "--ckpt_file", str(ckpt), *common)
    assert result.returncode == 0, result.stdout + result.stderr
    check_export(ts, ckpt, "msd_lung", 2)


@pytest.mark.slow
def test_all_stages_on_real_dicom_series(tmp_path, pancreas_ct_nih):
    """search -> train (arch 'auto' = the search's arch.json) -> inference (default: the fold's S_test, written on
    the DICOM grid) -> evaluate, all with the same overrides."""
    common = dict(dataset_dir=str(pancreas_ct_nih), layout="nih", num_folds=3, spacing=[4.0, 4.0, 4.0])
    run_search(tmp_path / "fold0" / "search", **common, max_epochs=1, arch_warmup_epochs=0)
    searched = Architecture.load(tmp_path / "fold0" / "search" / "arch.json")
    run_stage("train", tmp_path, **common)
    check_train_outputs(tmp_path / "fold0" / "train", searched)
    run_stage("inference", tmp_path, **common)
    test_cases = json.loads((tmp_path / "folds.json").read_text())["folds"][0]
    assert len(test_cases) == 1
    for case in test_cases:
        name = case_name(case["image"])
        assert name.startswith("PANCREAS_")
        check_same_grid(tmp_path / "fold0" / "infer" / name / f"{name}_seg.nii.gz", case["image"])
    run_stage("evaluate", tmp_path, **common)
    summary = json.loads((tmp_path / "fold0" / "eval" / "summary.json").read_text())
    assert summary["num_cases"] == 1 and Architecture.from_dict(summary["settings"]["architecture"]) == searched
    assert (tmp_path / "fold0" / "eval" / "overlays" / f"{name}.png").stat().st_size > 0


def test_tiny_overrides_are_known_keys():
    """The overrides the stage tests pass are keys of the bundles (so they are not silently ignored)."""
    keys = set()
    for stage in STAGES:
        keys |= set(json.loads((BUNDLES / "vnas_nih" / f"{stage}.json").read_text()))
    assert set(TINY) <= keys, set(TINY) - keys


@pytest.mark.parametrize("bundle", ["vnas_msd_lung", "vnas_msd_pancreas"])
def test_msd_search_is_the_nih_search_with_dataset_defaults(bundle):
    """The MSD bundles' search.json is the NIH one with only the dataset defaults changed (kept in step)."""
    nih = json.loads((BUNDLES / "vnas_nih" / "search.json").read_text())
    msd = json.loads((BUNDLES / bundle / "search.json").read_text())
    differing = {k for k in set(nih) | set(msd) if nih.get(k) != msd.get(k)}
    assert differing <= {"_desc_", "work_dir", "roi_size", "num_classes", "intensity_clip"}, differing
    # the dataset default, unless a plan (bundle key "plan") sets it
    assert msd["roi_size"] == "$vnas_monai.plan.plan_value(@plan_dict, 'roi_size', [64, 64, 64])"
    assert msd["work_dir"] == f"runs/{bundle}"
