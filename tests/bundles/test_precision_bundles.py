"""The ``precision`` bundle key through MONAI's ``ConfigWorkflow``: search, retraining, inference and evaluation on
real CT in bf16 (and ``auto``), float32 checkpoints that ``torch.load(weights_only=True)`` reads, and bad values."""

from __future__ import annotations

import pytest
import torch

from tests.bundles.test_search_bundle import run_search
from tests.bundles.test_train_bundle import run_stage
from vnas_monai.engine import resolve_precision


def _float32_state(path) -> dict:
    state = torch.load(path, weights_only=True)
    state = state.get("network", state.get("model", state))
    floats = [v for v in state.values() if isinstance(v, torch.Tensor) and v.is_floating_point()]
    assert floats and all(v.dtype == torch.float32 for v in floats), f"{path.name} holds non-float32 weights"
    return state


@pytest.mark.parametrize("precision", ["bf16", "auto"])
def test_search_bundle_in_precision(tmp_path, precision):
    out = tmp_path / "fold0" / "search"
    arch = run_search(out, precision=precision)
    assert arch["complete"]
    assert "alpha" in _float32_state(out / "checkpoint_final.pt")


def test_train_infer_evaluate_in_bf16_on_real_ct(tmp_path, pancreas_ct_msd):
    common = dict(dataset_dir=str(pancreas_ct_msd), num_folds=3, arch="msd_lung", spacing=[6.0, 6.0, 6.0])
    workflow = run_stage("train", tmp_path, precision="bf16", **common)
    assert workflow.parser.get_parsed_content("train#trainer").precision.name == "bf16"
    inferer = workflow.parser.get_parsed_content("validate#inferer")
    assert inferer.policy(torch.device("cpu")).name == "bf16"
    _float32_state(tmp_path / "fold0" / "train" / "model.pt")

    evaluate = run_stage("evaluate", tmp_path, precision="bf16", **common)
    assert evaluate.parser.get_parsed_content("inferer").policy(torch.device("cpu")).name == "bf16"
    assert (tmp_path / "fold0" / "eval" / "summary.json").is_file()

    infer = run_stage("inference", tmp_path, precision="auto", **common)
    expected = resolve_precision("auto", "cpu").name
    assert infer.parser.get_parsed_content("inferer").policy(torch.device("cpu")).name == expected
    assert list((tmp_path / "fold0" / "infer").rglob("*_seg.nii.gz"))


def test_bad_precision_names_the_key(tmp_path):
    with pytest.raises(Exception) as info:
        run_search(tmp_path / "fold0" / "search", precision="fp64")
    chain, e = [], info.value
    while e is not None:
        chain.append(str(e))
        e = e.__cause__ or e.__context__
    assert any("precision 'fp64' is not one of" in m and "'precision'" in m for m in chain)
