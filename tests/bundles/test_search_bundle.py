"""End-to-end runs of ``bundles/vnas_nih/search.json`` through MONAI's own ``ConfigWorkflow`` on real data."""

from __future__ import annotations

import json
import re

import pytest
import torch
from monai.bundle import ConfigWorkflow

from tests.conftest import BUNDLES
from vnas_monai.spaces.vnas.encoding import Architecture

SEARCH = str(BUNDLES / "vnas_nih" / "search.json")
TINY = dict(
    init_filters=4,
    roi_size=[32, 32, 32],
    max_epochs=2,
    arch_warmup_epochs=1,
    epoch_length=2,
    num_samples=2,  # a 32^3 patch reaches 1x1x1 at the bottom: BatchNorm needs 2 samples
    num_workers=0,
    precision="fp32",
    device="cpu",
)


def run_search(output_dir, **overrides) -> dict:
    workflow = ConfigWorkflow(
        config_file=SEARCH,
        workflow_type=None,
        run_id="search",
        work_dir=str(output_dir.parent),
        output_dir=str(output_dir),
        **{**TINY, **overrides},
    )
    workflow.initialize()
    workflow.run()
    workflow.finalize()
    return json.loads((output_dir / "arch.json").read_text())


def check_search_outputs(out, arch: dict) -> None:
    assert arch["complete"] and arch["epoch"] == 2 and len(arch["history"]) == 2
    Architecture.from_dict(arch)  # valid Architecture format
    uniform = torch.full((16, 3), 1 / 3)
    history = [torch.tensor(h["encoder"]) for h in arch["history"]]
    assert torch.allclose(history[0], uniform, atol=1e-6), "alpha moved during the warm-up epoch"
    assert not torch.allclose(torch.tensor(arch["probabilities"]["encoder"]), uniform, atol=1e-6)
    assert (out / "arch_probabilities.png").stat().st_size > 0
    ckpt = torch.load(out / "checkpoint_final.pt", weights_only=True)
    assert {"network", "optimizer", "arch_optimizer", "lr_scheduler", "trainer", "arch_logger"} <= set(ckpt)
    assert "alpha" in ckpt["network"] and "beta" in ckpt["network"]
    assert any(p.name.startswith("events") for p in (out / "tensorboard").iterdir())


@pytest.mark.slow
def test_search_on_real_hippocampus_mri(tmp_path, hippocampus_dir):
    out = tmp_path / "search"
    arch = run_search(
        out, dataset_dir=str(hippocampus_dir), num_classes=3, intensity_clip=None, max_cases=8, num_folds=4
    )
    check_search_outputs(out, arch)
    folds = json.loads((tmp_path / "folds.json").read_text())
    assert folds["num_folds"] == 4


@pytest.mark.slow
def test_search_on_real_ct_nifti(tmp_path, pancreas_ct_msd):
    """Also with the entropy term of a budgeted search (``arch_entropy_weight``, off by default as in the paper)."""
    out = tmp_path / "search"
    arch = run_search(out, dataset_dir=str(pancreas_ct_msd), num_folds=1, spacing=[3.0, 3.0, 3.0],
                      arch_entropy_weight=0.5)
    check_search_outputs(out, arch)


@pytest.mark.slow
def test_search_on_real_ct_dicom_series(tmp_path, pancreas_ct_nih):
    out = tmp_path / "search"
    check_search_outputs(out, run_search(out, dataset_dir=str(pancreas_ct_nih), num_folds=1, layout="nih"))


def test_search_resumes_from_its_checkpoint(tmp_path, pancreas_ct_msd):
    out = tmp_path / "search"
    run_search(out, dataset_dir=str(pancreas_ct_msd), num_folds=1, max_epochs=1)
    arch = run_search(out, dataset_dir=str(pancreas_ct_msd), num_folds=1, max_epochs=2)
    assert [h["epoch"] for h in arch["history"]] == [1, 2]


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(dataset_dir="/no/such/dataset"), "/no/such/dataset"),
        (dict(roi_size=[48, 32, 32]), "divisible by 32"),
    ],
)
def test_bad_inputs_stop_before_training(tmp_path, overrides, match):
    with pytest.raises(Exception) as info:
        run_search(tmp_path / "search", **overrides)
    assert re.search(match, error_chain(info.value)), error_chain(info.value)
    assert not (tmp_path / "search" / "arch.json").exists()


def error_chain(exc: BaseException | None) -> str:
    """The messages of an exception and its causes (MONAI wraps config errors in a RuntimeError)."""
    messages = []
    while exc is not None:
        messages.append(f"{type(exc).__name__}: {exc}")
        exc = exc.__cause__ or exc.__context__
    return "\n".join(messages)


@pytest.mark.parametrize("stage", ["search", "train"])
@pytest.mark.parametrize("flip_axes", [[0, 1], [0], [], [2]])
def test_flip_axes_choose_the_random_flips(stage, flip_axes):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(BUNDLES / "vnas_msd_pancreas" / f"{stage}.json"))
    parser["flip_axes"] = flip_axes
    flips = [t for t in parser.get_parsed_content("augmentation") if type(t).__name__ == "RandFlipd"]
    assert [t.flipper.spatial_axis for t in flips] == flip_axes


@pytest.mark.parametrize("bad", [[3], 1.0, ["y"]])
def test_flip_axes_out_of_range_are_refused(bad):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(BUNDLES / "vnas_nih" / "search.json"))
    parser["flip_axes"] = bad
    with pytest.raises(Exception) as info:
        parser.get_parsed_content("augmentation")
    assert "flip_axes must be spatial axes among 0, 1, 2" in error_chain(info.value)
