"""End-to-end runs of ``bundles/*/train.json`` (retraining of a discrete architecture) through MONAI's
``ConfigWorkflow`` on real CT data, and the helpers the other stage tests share."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from ignite.engine import Engine, Events
from monai.bundle import ConfigWorkflow
from monai.handlers import CheckpointLoader

from tests.bundles.test_search_bundle import TINY as SEARCH_TINY
from tests.bundles.test_search_bundle import error_chain
from tests.conftest import BUNDLES
from vnas_monai.spaces.vnas import VNASNet
from vnas_monai.spaces.vnas.encoding import Architecture

#: Tiny budgets shared by every stage (one set of overrides drives a dataset through all stages): the search's,
#: one epoch, and a small inference window.
TINY = {
    **{k: v for k, v in SEARCH_TINY.items() if k != "arch_warmup_epochs"},
    "max_epochs": 1,
    "infer_roi_size": [32, 32, 32],
    "overlap": 0.25,
}
STAGE_KEYS = {  # keys a stage does not have (MONAI's parser would add them harmlessly, but keep overrides honest)
    "inference": {"max_epochs", "epoch_length", "num_samples"},
    "evaluate": {"max_epochs", "epoch_length", "num_samples"},
}


def run_stage(stage: str, work_dir: Path, bundle: str = "vnas_nih", run_id: str = "run", **overrides) -> ConfigWorkflow:
    """Run ``bundles/<bundle>/<stage>.json`` through ``ConfigWorkflow`` with ``TINY`` + ``overrides``."""
    config = {**TINY, **overrides}
    config = {k: v for k, v in config.items() if k not in STAGE_KEYS.get(stage, ()) or k in overrides}
    workflow = ConfigWorkflow(
        config_file=str(BUNDLES / bundle / f"{stage}.json"),
        workflow_type=None,
        run_id=run_id,
        work_dir=str(work_dir),
        **config,
    )
    workflow.initialize()
    workflow.run()
    workflow.finalize()
    return workflow


def random_checkpoint(path: Path, arch: str = "nih", num_classes: int = 2, init_filters: int = 4) -> Path:
    """A ``model.pt`` of an untrained ``VNASNet`` (plain state dict), for the inference/evaluation stages."""
    torch.manual_seed(0)
    net = VNASNet(architecture=arch, out_channels=num_classes, init_filters=init_filters)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)
    return path


def check_train_outputs(out: Path, arch: Architecture, init_filters: int = 4) -> None:
    for name in ("model.pt", "model_final.pt"):
        state = torch.load(out / name, weights_only=True)
        assert isinstance(state, dict) and "arch_code" in state, f"{name} is not a plain VNASNet state dict"
        net = VNASNet(architecture=arch, init_filters=init_filters)
        net.load_state_dict(state)  # directly
        wrapped = VNASNet(architecture=arch, init_filters=init_filters)
        loader = CheckpointLoader(load_path=str(out / name), load_dict={"model": wrapped}, map_location="cpu")
        engine = Engine(lambda e, b: None)
        loader.attach(engine)
        engine.run([0], max_epochs=1)  # MONAI's CheckpointLoader wraps a plain state dict as {"model": ...}
        assert torch.equal(wrapped.stem.conv1.conv.weight, net.stem.conv1.conv.weight)
    assert Architecture.load(out / "arch.json") == arch
    assert (out / "architecture.png").stat().st_size > 0
    assert any(p.name.startswith("events") for p in (out / "tensorboard").iterdir())
    assert torch.load(out / "checkpoint_final.pt", weights_only=True).keys() >= {"network", "optimizer", "trainer"}


@pytest.mark.slow
def test_train_preset_on_real_ct(tmp_path, pancreas_ct_msd):
    # val_interval (10) > max_epochs (1): the validation after training still writes the best model, model.pt
    workflow = run_stage(
        "train", tmp_path, dataset_dir=str(pancreas_ct_msd), num_folds=3, arch="msd_lung", spacing=[6.0, 6.0, 6.0]
    )
    out = tmp_path / "fold0" / "train"
    check_train_outputs(out, Architecture.preset("msd_lung"))
    folds = json.loads((tmp_path / "folds.json").read_text())
    test_images = {c["image"] for c in folds["folds"][0]}
    # S_test is never seen in training or validation
    assert not test_images & {c["image"] for c in workflow.parser.get_parsed_content("train#dataset#data")}
    assert not test_images & {c["image"] for c in workflow.parser.get_parsed_content("validate#dataset#data")}
    assert workflow.parser.get_parsed_content("validate#evaluator").state.best_metric >= 0
    assert workflow.parser.get_parsed_content("lr_scheduler").total_iters == 2  # max_epochs x epoch_length


@pytest.mark.slow
def test_train_resumes_from_its_checkpoint(tmp_path, pancreas_ct_msd):
    common = dict(dataset_dir=str(pancreas_ct_msd), num_folds=1, arch="2d", spacing=[6.0, 6.0, 6.0], val_interval=1)
    run_stage("train", tmp_path, max_epochs=1, **common)
    workflow = ConfigWorkflow(
        config_file=str(BUNDLES / "vnas_nih" / "train.json"), workflow_type=None, run_id="run", work_dir=str(tmp_path),
        **{**TINY, **common, "max_epochs": 2},
    )
    workflow.initialize()
    trainer = workflow.parser.get_parsed_content("train#trainer")
    seen = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: seen.append(e.state.iteration))
    workflow.run()
    assert seen == [3, 4], f"the second run did not resume after iteration 2: {seen}"
    # the best validation score so far is part of the resumable state: model.pt is only replaced by a better one
    best = torch.load(tmp_path / "fold0" / "train" / "checkpoint_final.pt", weights_only=True)["best_model"]
    assert len(best["_saved"]) == 1 and best["_saved"][0][0] >= 0  # (best val_mean_dice, file) of model.pt
    check_train_outputs(tmp_path / "fold0" / "train", Architecture.uniform("2d"))


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(arch="no_such_arch"), "no_such_arch"),
        (dict(arch="auto", arch_fallback=None), r"search[/\\]arch\.json"),
        (dict(arch="/no/such/arch.json"), "/no/such/arch.json"),
    ],
)
def test_train_bad_architecture_stops_before_training(tmp_path, overrides, match):
    with pytest.raises(Exception) as info:
        run_stage("train", tmp_path, **overrides)
    assert re.search(match, error_chain(info.value)), error_chain(info.value)
    assert not (tmp_path / "fold0" / "train" / "model.pt").exists()


@pytest.mark.slow
def test_plan_auto_drives_search_and_train(tmp_path, hippocampus_dir):
    """``plan: "auto"``: the search computes the fold's plan once (``<work_dir>/fold0/plan.json``, from S_train + S_val
    only), the training reads the same file, and the patch, spacing, flips, intensity window, batch and pos/neg
    sampling of both come from it; settings.json carries them to inference and evaluation."""
    from vnas_monai.plan import load_plan

    common = dict(dataset_dir=str(hippocampus_dir), num_classes=3, max_cases=8, num_folds=4, plan="auto")
    tiny = {k: v for k, v in TINY.items() if k not in ("roi_size", "num_samples")}  # the plan's
    search = ConfigWorkflow(config_file=str(BUNDLES / "vnas_nih" / "search.json"), workflow_type=None,
                            run_id="run", work_dir=str(tmp_path), **tiny, **common)  # 'run' is an alias of 'search'
    search.initialize()
    search.run()
    search.finalize()
    plan_file = tmp_path / "fold0" / "plan.json"
    plan = load_plan(plan_file)
    assert plan["modality"] == "MRI" and plan["normalisation"]["clip"] is None and plan["divisible_by"] == 32
    assert search.parser.get_parsed_content("roi_size") == plan["patch_size"] == [32, 64, 32]
    assert search.parser.get_parsed_content("flip_axes") == [0]
    assert search.parser.get_parsed_content("augmentation#0#neg") == plan["foreground"]["neg"]
    written = plan_file.stat().st_mtime_ns
    workflow = ConfigWorkflow(config_file=str(BUNDLES / "vnas_nih" / "train.json"), workflow_type=None,
                              run_id="run", work_dir=str(tmp_path), **tiny, **common, arch="auto")
    workflow.initialize()
    workflow.run()
    workflow.finalize()
    assert plan_file.stat().st_mtime_ns == written  # read, not recomputed
    settings = json.loads((tmp_path / "fold0" / "train" / "settings.json").read_text())
    assert settings["roi_size"] == plan["patch_size"] and settings["spacing"] == plan["spacing"]
    assert settings["intensity_clip"] is None and settings["flip_axes"] == [0]
    assert workflow.parser.get_parsed_content("batch_size") == plan["batch_size"]
