"""One-shot scoring of V-NAS architectures with a supernet's weights (``vnas_monai.benchmark.oneshot``)."""

from __future__ import annotations

import json

import torch

from vnas_monai.benchmark.oneshot import recalibrate_batch_norm, val_dice
from vnas_monai.engine import resolve_precision


def test_recalibrated_statistics_are_the_plain_average_of_the_batches():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv3d(1, 3, 1, bias=False), torch.nn.BatchNorm3d(3))
    net[1].running_mean.fill_(5.0)
    batches = [torch.randn(2, 1, 3, 4, 5) + i for i in range(3)]
    recalibrate_batch_norm(net, batches, resolve_precision("fp32", "cpu"))
    with torch.no_grad():
        means = torch.stack([net[0](x).mean((0, 2, 3, 4)) for x in batches])
    assert not net.training
    torch.testing.assert_close(net[1].running_mean, means.mean(0), rtol=1e-5, atol=1e-6)
    assert int(net[1].num_batches_tracked) == 3


def test_val_dice_of_a_perfect_and_of_an_empty_prediction():
    label = torch.zeros(1, 6, 10, 4, dtype=torch.long)
    label[0, 1:3, 2:6, 1:3] = 1
    label[0, 3:5, 2:6, 1:3] = 2
    dataset = [{"image": label.float(), "label": label}]

    class Copy(torch.nn.Module):
        def __init__(self, empty: bool) -> None:
            super().__init__()
            self.empty = empty

        def forward(self, x):
            codes = torch.zeros_like(x[:, 0]).long() if self.empty else x[:, 0].round().long()
            return torch.nn.functional.one_hot(codes, 3).permute(0, 4, 1, 2, 3).float()

    fp32 = resolve_precision("fp32", "cpu")
    assert val_dice(Copy(False), dataset, (4, 8, 4), 3, fp32) == 1.0
    assert val_dice(Copy(True), dataset, (4, 8, 4), 3, fp32) == 0.0


def test_supernet_ranking_script_scores_benchmark_rows(tmp_path):
    """``benchmarks/supernet_ranking.py`` end to end on phantoms: trains a uniform-path supernet, scores the rows'
    architectures on S_val, writes ranking.json beside their held-out Dice."""
    from tests.test_benchmarks_smoke import import_benchmark_script
    from vnas_monai.cli import main

    main(["benchmark", "--budget_min", "0.05", "--methods", "vnas_random1,vnas_random2", "--work_dir", str(tmp_path),
          "--phantom_cases", "8"])
    script = import_benchmark_script("supernet_ranking")
    result = script.main([str(tmp_path), "--dataset_dir", str(tmp_path / "phantom_data"), "--train_minutes", "0.02",
                          "--bn_batches", "2", "--out", str(tmp_path / "ranking")])
    assert {r["row"] for r in result["rows"]} == {"vnas_random1", "vnas_random2"}
    assert all(0.0 <= r["supernet_val_dice"] <= 1.0 for r in result["rows"])
    assert json.loads((tmp_path / "ranking" / "ranking.json").read_text())["rows"] == result["rows"]
    assert result["supernet"]["arch_steps"] == 0  # uniform paths: the architecture never moved

    # rows kept as metrics.csv only (as under benchmarks/results): architectures come from --architectures
    kept = tmp_path / "kept" / "random_a"
    kept.mkdir(parents=True)
    (kept / "metrics.csv").write_text((tmp_path / "vnas_random1" / "metrics.csv").read_text())
    arch = next(r["architecture"] for r in result["rows"] if r["row"] == "vnas_random1")
    (tmp_path / "archs.json").write_text(json.dumps({"random_a": arch}))
    again = script.main([str(tmp_path), "--dataset_dir", str(tmp_path / "phantom_data"), "--rows_dir",
                         str(tmp_path / "kept"), "--architectures", str(tmp_path / "archs.json"), "--supernet",
                         result["supernet"]["supernet_checkpoint"], "--bn_batches", "2", "--out", str(tmp_path / "r2")])
    assert [r["row"] for r in again["rows"]] == ["random_a"]
    assert again["rows"][0]["held_out_dice"] == next(r["held_out_dice"] for r in result["rows"]
                                                     if r["row"] == "vnas_random1")

    # no weight sharing: each architecture trained alone on S_train (not S_val) and scored on S_val
    alone = script.main([str(tmp_path), "--dataset_dir", str(tmp_path / "phantom_data"), "--standalone_minutes",
                         "0.01", "--out", str(tmp_path / "alone")])
    assert {r["row"] for r in alone["rows"]} == {"vnas_random1", "vnas_random2"}
    assert all(0.0 <= r["standalone_val_dice"] <= 1.0 for r in alone["rows"])
    assert alone["standalone"] == {"standalone_minutes": 0.01, "trained_on": "S_train"}
    assert (tmp_path / "alone" / "vnas_random1" / "model.pt").is_file()
