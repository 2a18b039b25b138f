"""Smoke run of ``benchmarks/bench_search.py`` at a tiny size (about 20 s on one thread): every row runs in fp32
and bf16, the matrix-product rate is measured in both, and the JSON holds issue 12's check ratios. The figures of
a run this small say nothing about speed (no warm-up, 4 filters); the real run is in ``benchmarks/README.md``."""

from __future__ import annotations

import importlib
import json
import sys

import pytest

from tests.conftest import REPO

ROWS = ("vnas_mixed_fast", "dints", "vnasnet_train_fast")  # the rows issue 12's ratios need


def import_benchmark_script(name: str):
    """A script of ``benchmarks/`` (not a package) as a module."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(REPO / "benchmarks"))


@pytest.fixture(scope="module")
def bench():
    return import_benchmark_script("bench_search")


def test_bench_search_reports_fp32_and_bf16(bench, tmp_path):
    out = tmp_path / "search.json"
    result = bench.main([
        "--quick", "--skip-memory", "--rounds", "1", "--warmup", "0", "--threads", "1", "--init-filters", "4",
        "--patch", "32", "32", "32", "--volume", "32", "32", "32", "--roi", "32", "32", "32",
        "--device", "cpu", "--precisions", "fp32,bf16", "--rows", ",".join(ROWS), "--output", str(out),
    ])
    saved = json.loads(out.read_text())
    assert saved["checks"] == result["checks"]
    assert saved["settings"]["precisions"] == ["fp32", "bf16"]
    assert set(saved["matmul_gflops"]) == {"fp32", "bf16"} and min(saved["matmul_gflops"].values()) > 0
    for row in ROWS:
        assert set(saved["steps"][row]) == {"fp32", "bf16"}, row
        for p, r in saved["steps"][row].items():
            assert r["precision"] == p and r["step_s_min"] > 0 and r["conv_gflops"] > 0
            assert set(r["pct_of_matmul"]) == {"fp32", "bf16"}
        assert saved["steps"][row]["fp32"]["speedup_vs_fp32"] == pytest.approx(1.0)
    for model, per in saved["inference"].items():
        assert set(per) == {"fp32", "bf16"}, model
    checks = saved["checks"]
    assert checks["low_precision"] == "bf16" and checks["dints_best_precision"] in ("fp32", "bf16")
    for name in ("mixed_iteration_bf16_speedup_vs_fp32", "mixed_iteration_bf16_speedup_vs_dints_best",
                 "mixed_iteration_bf16_pct_of_fp32_matmul", "retrain_step_bf16_speedup_vs_fp32",
                 "inference_bf16_speedup_vs_fp32"):
        assert checks[name] > 0, name
    for goal in ("mixed_iteration_bf16_speedup_vs_fp32_at_least_3x",
                 "mixed_iteration_bf16_speedup_vs_dints_best_at_least_2x",
                 "mixed_iteration_bf16_at_least_20pct_of_fp32_matmul",
                 "retrain_step_bf16_speedup_vs_fp32_at_least_2.5x",
                 "inference_bf16_speedup_vs_fp32_at_least_2.5x"):
        assert isinstance(checks[goal], bool), goal
    t = saved["steps"]
    assert checks["mixed_iteration_bf16_speedup_vs_fp32"] == pytest.approx(
        t["vnas_mixed_fast"]["fp32"]["step_s_min"] / t["vnas_mixed_fast"]["bf16"]["step_s_min"], abs=1e-3)


def test_precisions_option(bench):
    import torch

    cpu = torch.device("cpu")
    assert bench.parse_precisions(None, cpu) == ["fp32", "bf16"]
    assert bench.parse_precisions("fp32, FP32,bf16", cpu) == ["fp32", "bf16"]
    with pytest.raises(ValueError, match="precision"):
        bench.parse_precisions("fp8", cpu)


def test_bench_layout_times_every_layout(tmp_path):
    """``benchmarks/bench_layout.py`` at a tiny size: a step time for each layout of the network and the supernet."""
    bench_layout = import_benchmark_script("bench_layout")
    out = tmp_path / "layout.json"
    record = bench_layout.main(["--roi", "32", "32", "32", "--batch", "2", "--init_filters", "4", "--repeats", "1",
                                "--output", str(out)])
    assert json.loads(out.read_text()) == record
    for kind in ("network", "supernet"):
        assert set(record["step_s"][kind]) == set(bench_layout.LAYOUTS)
        assert all(t > 0 for t in record["step_s"][kind].values())


def test_mbnas_trial_noise_reports_every_seed(tmp_path):
    """``benchmarks/mbnas_trial_noise.py`` at a tiny size on phantoms: one line per seed, every epoch validated."""
    from vnas_monai.data import make_phantom_dataset

    root = make_phantom_dataset(tmp_path / "data", num_cases=10, shape=(32, 32, 8))
    summary = import_benchmark_script("mbnas_trial_noise").main([
        "--dataset_dir", str(root), "--num_classes", "2", "--patch_size", "32", "32", "--batch_size", "8",
        "--epochs", "3", "--steps_per_epoch", "2", "--init_channels", "4", "--seeds", "0", "1", "--num_nodes", "6",
        "--max_downsamplings", "2", "--max_cases", "10"])
    assert [r["seed"] for r in summary["runs"]] == [0, 1] and summary["batch_dice"] is True
    assert all(len(r["val_dice"]) == 3 and r["steps"] == 6 for r in summary["runs"])
    assert summary["score_spread"] >= 0.0 and 0.0 <= summary["score_mean"] <= 1.0


def test_make_thick_slice_averages_images_keeps_middle_labels_and_world_position(tmp_path):
    import nibabel as nib
    import numpy as np

    script = import_benchmark_script("make_thick_slice")
    src = tmp_path / "src"
    (src / "imagesTr").mkdir(parents=True)
    (src / "labelsTr").mkdir()
    affine = np.diag([1.0, 1.5, 2.0, 1.0])
    affine[:3, 3] = [10.0, -5.0, 3.0]
    img = np.arange(4 * 5 * 7, dtype=np.float32).reshape(4, 5, 7)
    lab = (np.arange(7)[None, None, :] % 3 == 1).astype(np.uint8) * np.ones((4, 5, 1), np.uint8)
    nib.save(nib.Nifti1Image(img, affine), src / "imagesTr" / "c_001.nii.gz")
    nib.save(nib.Nifti1Image(lab, affine), src / "labelsTr" / "c_001.nii.gz")
    pair = {"image": "./imagesTr/c_001.nii.gz", "label": "./labelsTr/c_001.nii.gz"}
    (src / "dataset.json").write_text(json.dumps({"name": "toy", "labels": {"0": "bg", "1": "fg"}, "training": [pair]}))

    dst = script.main(["--dataset_dir", str(src), "--output_dir", str(tmp_path / "thick"), "--factor", "3"])
    out_img, out_lab = nib.load(dst / pair["image"]), nib.load(dst / pair["label"])
    assert out_img.shape == (4, 5, 2)  # 7 slices: 2 groups of 3, the 7th dropped
    np.testing.assert_allclose(out_img.get_fdata()[..., 1], img[..., 3:6].mean(-1))
    assert (np.asarray(out_lab.dataobj) == 1).all()  # the middle thin slices 1 and 4 are the labelled ones
    assert out_img.header.get_zooms() == (1.0, 1.5, 6.0)
    # the thick slice's centre is the middle thin slice's centre in world coordinates
    np.testing.assert_allclose(out_img.affine @ [0, 0, 1, 1], affine @ [0, 0, 4, 1])
    assert json.loads((dst / "dataset.json").read_text())["training"] == [pair]
    with pytest.raises(SystemExit, match="exists"):
        script.main(["--dataset_dir", str(src), "--output_dir", str(dst)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src", "thick"]  # no temporary folder left behind


def test_bench_layer_precision_counts_calls_and_bounds_the_oracle(tmp_path):
    """``benchmarks/bench_layer_precision.py``: a convolution module called twice on the same shape is one layer with
    two calls; at a tiny size every mode is timed and the per-layer oracle is no slower than any single mode."""
    import torch

    script = import_benchmark_script("bench_layer_precision")
    conv, up = torch.nn.Conv3d(3, 3, (3, 3, 1), padding=(1, 1, 0)), torch.nn.ConvTranspose3d(3, 2, 2, stride=2)
    calls = script.record_convs(lambda x: up(conv(conv(x))), torch.randn(1, 3, 4, 6, 2), [conv, up])
    assert sorted(calls.values()) == [1, 2]
    out = tmp_path / "layers.json"
    result = script.main(["--threads", "1", "--init-filters", "4", "--patch", "32", "32", "32", "--batch", "1",
                          "--repeats", "1", "--output", str(out)])
    assert json.loads(out.read_text())["sums_ms"] == result["sums_ms"]
    assert all(set(r["ms"]) == set(script.MODES) for r in result["layers"])
    sums = result["sums_ms"]
    assert sums["oracle"] <= min(sums[m] for m in script.MODES)


def test_bench_layer_precision_times_batch_norms_forward_and_backward(tmp_path):
    """``--layers norm``: every batch norm call of the network is counted once per input shape and timed forward and
    backward in every mode; the sums weigh each shape by its calls."""
    script = import_benchmark_script("bench_layer_precision")
    out = tmp_path / "norms.json"
    result = script.main(["--layers", "norm", "--threads", "1", "--init-filters", "4", "--patch", "32", "32", "32",
                          "--batch", "2", "--repeats", "1", "--output", str(out)])
    assert json.loads(out.read_text())["norm_sums_ms"] == result["norm_sums_ms"]
    layers = result["norm_layers"]
    assert layers and sum(r["calls"] for r in layers) > len(layers)  # several norms share a shape
    for part in ("fwd_ms", "bwd_ms"):
        for m in script.MODES:
            assert result["norm_sums_ms"][part][m] == pytest.approx(sum(r["calls"] * r[part][m] for r in layers))
            assert all(r[part][m] > 0 for r in layers)
