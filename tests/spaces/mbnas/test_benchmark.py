"""MB-NAS as benchmark methods (Bosma et al., SPIE 2022): the slice-wise wrapper's shapes and gradients, and the
search and a reference through ``vnas_monai benchmark`` on phantoms at a tiny budget (the plan's volumes, the
time-bounded search, the retraining that fills the budget, the evaluation by sliding window, a refused export)."""

from __future__ import annotations

import functools
import json

import pytest
import torch

from tests.conftest import BUNDLES
from vnas_monai.benchmark import METHODS, register_method
from vnas_monai.spaces.mbnas import unet_encoding
from vnas_monai.spaces.mbnas.benchmark import SliceWise, train_mbnas
from vnas_monai.spaces.mbnas.network import MBNASNet


def test_slice_wise_runs_the_2d_network_on_every_axial_slice():
    net = MBNASNet(unet_encoding(6, max_downsamplings=2), spatial_dims=2, in_channels=2, out_channels=3,
                   init_channels=4).eval()
    model = SliceWise(net)
    x = torch.randn(2, 2, 8, 12, 5, requires_grad=True)  # non-cubic, D not a multiple of anything
    out = model(x)
    assert out.shape == (2, 3, 8, 12, 5)
    with torch.no_grad():
        torch.testing.assert_close(out[1, :, :, :, 3], net(x[1:2, :, :, :, 3])[0])
    out.sum().backward()
    assert x.grad is not None and all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_search_and_reference_through_the_benchmark_command(tmp_path):
    from vnas_monai.cli import main
    from vnas_monai.export import export_bundle

    tiny = dict(trial_epochs=2, trial_steps=2, batch_size=8, init_channels=4, num_nodes=6, max_downsamplings=2)
    register_method("mbnas_tiny", functools.partial(train_mbnas, restriction="mbnas", **tiny), overwrite=True)
    register_method("mbnas_unet_tiny", functools.partial(train_mbnas, restriction=None, reference="U-Net", **tiny),
                    overwrite=True)
    try:
        main(["benchmark", "--budget_min", "0.4", "--methods", "mbnas_tiny,mbnas_unet_tiny", "--work_dir",
              str(tmp_path), "--phantom_cases", "8"])
    finally:
        METHODS.pop("mbnas_tiny", None)
        METHODS.pop("mbnas_unet_tiny", None)
    rows = json.loads((tmp_path / "benchmark.json").read_text())["rows"]
    assert {r["method"] for r in rows} == {"mbnas_tiny", "mbnas_unet_tiny"}
    assert all(0.0 <= r["dice_mean"] <= 100.0 for r in rows if r["class"] == "mean"), rows
    meta = json.loads((tmp_path / "mbnas_tiny" / "result.json").read_text())["meta"]
    assert meta["search"]["evaluations"] >= 1 and meta["steps"] >= 1 and meta["params"] > 0 and meta["macs"] > 0
    assert meta["train_time_s"] <= 0.4 * 60 * 1.5  # the budget holds (search, then retraining, stops at it)
    assert (tmp_path / "mbnas_tiny" / "search" / "trials.jsonl").is_file()
    settings = json.loads((tmp_path / "mbnas_tiny" / "train" / "settings.json").read_text())
    assert settings["preprocessing"] == "PlanVolumes" and settings["space"] == "mbnas"
    assert json.loads((tmp_path / "mbnas_unet_tiny" / "result.json").read_text())["meta"]["search"] == {}
    with pytest.raises(ValueError, match="preprocessing='PlanVolumes'"):  # the export would not reproduce the plan
        export_bundle(str(tmp_path / "exported"), str(tmp_path / "mbnas_tiny" / "train"),
                      bundle_dir=str(BUNDLES / "mbnas_spleen"))
    assert not (tmp_path / "exported").exists()
    # a crashed method reruns in its folder: the search resumes from its archive (its trials' cost from the archive)
    from vnas_monai.spaces.mbnas.benchmark import _archived_trial_s

    archive = tmp_path / "mbnas_tiny" / "search"
    lines = (archive / "trials.jsonl").read_text().splitlines()
    assert _archived_trial_s(archive) == pytest.approx(
        sum(json.loads(line)["wall_s"] for line in lines) / len(lines))
