"""The benchmark command: registry, resume, tables and box plot, and an end-to-end run on the embedded phantoms."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch

from tests.plan.synthetic import make_dataset
from vnas_monai.baselines import TrainedModel, save_checkpoint
from vnas_monai.benchmark import METHODS, benchmark, get_method, register_method
from vnas_monai.benchmark.evaluate import read_result, write_result
from vnas_monai.evaluation.tables import table_rows, write_tables


class _Oracle(torch.nn.Module):
    """Predicts class 1 where the image is bright (the synthetic dataset's labels are +40 brighter)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        fg = (x > 1.0).float()
        logits = torch.zeros(x.shape[0], self.num_classes, *x.shape[2:])
        logits[:, 0] = 1 - fg[:, 0]
        logits[:, 1] = fg[:, 0]
        return logits + 0 * self.w


@pytest.fixture
def counting_method():
    calls = []

    def method(plan, splits, budget_s, work_dir):
        calls.append(budget_s)
        model = _Oracle(len(plan["class_names"]))
        ckpt = save_checkpoint(model, work_dir / "model.pt")
        meta = {"params": 1, "macs": 2, "train_time_s": 0.0, "steps": 0}
        return TrainedModel(model, list(plan["patch_size"]), ckpt, meta)

    register_method("oracle_test", method, overwrite=True)
    yield calls
    METHODS.pop("oracle_test", None)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("bench") / "ds", num_cases=8)


def test_registry_rules():
    assert {"unet", "dynunet", "segresnet"} <= set(METHODS)
    assert callable(get_method("unet"))
    with pytest.raises(KeyError, match="unknown benchmark method 'nope'.*unet"):
        get_method("nope")
    with pytest.raises(ValueError, match="already registered"):
        register_method("unet", lambda *a: None)
    with pytest.raises(ValueError, match="module:function"):
        register_method("x_test", "no_colon")
    with pytest.raises(ValueError, match="lower-case"):
        register_method("Bad Name", lambda *a: None)


def test_resume_tables_and_settings_check(data_dir, tmp_path, counting_method):
    md = benchmark(str(data_dir), budget_min=0.01, methods="oracle_test", work_dir=str(tmp_path))
    assert counting_method == [0.6]
    assert "| oracle_test | front |" in md and "| oracle_test | **mean** |" in md
    result = read_result(tmp_path / "oracle_test" / "result.json")
    assert len(result["records"]) == 2 and result["settings"]["num_test"] == 2
    dice_front = [r["dice"][0] for r in result["records"]]
    assert all(d > 0.3 for d in dice_front)  # the oracle finds the bright boxes
    assert all(r["dice"][1] == 0.0 for r in result["records"])  # it never predicts class 2
    for ext in ("md", "csv", "json"):
        assert (tmp_path / f"benchmark.{ext}").is_file()
    assert (tmp_path / "benchmark_dice.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "plan.json").is_file() and (tmp_path / "folds.json").is_file()
    # a second run reuses the result
    benchmark(str(data_dir), budget_min=0.01, methods="oracle_test", work_dir=str(tmp_path))
    assert counting_method == [0.6]
    # another budget in the same work_dir is refused, naming the file
    with pytest.raises(ValueError, match=r"oracle_test/result\.json was made with other settings"):
        benchmark(str(data_dir), budget_min=0.02, methods="oracle_test", work_dir=str(tmp_path))


def test_unknown_method_fails_before_training(data_dir, tmp_path, counting_method):
    with pytest.raises(KeyError, match="unknown benchmark method 'nope'"):
        benchmark(str(data_dir), budget_min=0.01, methods="oracle_test,nope", work_dir=str(tmp_path))
    assert counting_method == [] and not (tmp_path / "oracle_test").exists()
    with pytest.raises(ValueError, match="budget_min must be a positive"):
        benchmark(str(data_dir), budget_min=0, methods="oracle_test", work_dir=str(tmp_path))


def _result(method, dice, hd):
    records = [{"case": f"c{i}", "dice": list(d), "hd95_mm": list(h), "surface_dice": list(d)}
               for i, (d, h) in enumerate(zip(dice, hd))]
    return {"method": method, "class_names": ["bg", "a", "b"], "records": records,
            "meta": {"params": 10, "macs": 20, "train_time_s": 1.5, "steps": 3}, "settings": {}}


def test_table_statistics_leave_out_undefined_values(tmp_path):
    res = _result("m", [(0.8, float("nan")), (0.6, 0.4), (1.0, 0.2)], [(1.0, float("nan")), (float("inf"), 2.0),
                                                                       (3.0, 4.0)])
    rows = {r["class"]: r for r in table_rows([res])}
    assert rows["a"]["dice_mean"] == pytest.approx(0.8) and rows["a"]["n"] == 3
    assert rows["b"]["dice_mean"] == pytest.approx(0.3) and rows["b"]["undefined"] == 1
    assert rows["a"]["hd95_mean"] == pytest.approx(2.0)  # the infinite HD95 is left out
    assert rows["mean"]["dice_mean"] == pytest.approx((0.8 + 0.5 + 0.6) / 3)
    assert rows["a"]["dice_median"] == pytest.approx(0.8) and rows["a"]["dice_min"] == pytest.approx(0.6)
    paths = write_tables([res, _result("n", [(0.5, 0.5)] * 2, [(1.0, 1.0)] * 2)], tmp_path, {"fold": 0})
    with open(paths["csv"]) as f:
        assert [r["method"] for r in csv.DictReader(f)] == ["m"] * 3 + ["n"] * 3
    json.loads(paths["json"].read_text())


def test_result_round_trip_keeps_nan_and_inf(tmp_path):
    res = _result("m", [(float("nan"), 0.5)], [(float("inf"), 1.0)])
    write_result(tmp_path / "r.json", res)
    back = read_result(tmp_path / "r.json")
    assert math.isnan(back["records"][0]["dice"][0]) and math.isinf(back["records"][0]["hd95_mm"][0])
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match=r"bad\.json is malformed"):
        read_result(tmp_path / "bad.json")


def test_benchmark_on_phantoms_end_to_end(tmp_path):
    """The CI run: the command on the embedded phantoms (no dataset_dir), UNet at a tiny budget."""
    from vnas_monai.cli import main

    main(["benchmark", "--budget_min", "0.05", "--methods", "unet", "--work_dir", str(tmp_path),
          "--phantom_cases", "8"])
    rows = json.loads((tmp_path / "benchmark.json").read_text())["rows"]
    assert [r["class"] for r in rows] == ["organ", "mean"]
    assert rows[0]["n"] == 2 and rows[0]["params"] > 1e6 and rows[0]["steps"] >= 1
    state = torch.load(tmp_path / "unet" / "model.pt", weights_only=True)
    assert any(k.endswith("weight") for k in state)
    assert (tmp_path / "unet" / "metrics.csv").is_file()


def test_vnas_methods_on_phantoms_end_to_end(tmp_path):
    """V-NAS (search + retraining inside the budget), a random architecture and Mix through the same command."""
    from vnas_monai.cli import main
    from vnas_monai.spaces.vnas.encoding import Architecture

    main(["benchmark", "--budget_min", "0.15", "--methods", "vnas,vnas_random1,vnas_mix", "--work_dir", str(tmp_path),
          "--phantom_cases", "8"])
    rows = json.loads((tmp_path / "benchmark.json").read_text())["rows"]
    assert {r["method"] for r in rows} == {"vnas", "vnas_random1", "vnas_mix"}
    result = json.loads((tmp_path / "vnas" / "result.json").read_text())
    meta = result["meta"]
    assert meta["search_iterations"] >= 1 and meta["steps"] >= 1 and "median_margin" in meta["decision"]
    arch = Architecture.load(tmp_path / "vnas" / "arch.json")
    assert " | ".join(arch.to_paper()) == meta["architecture"]
    state = torch.load(tmp_path / "vnas" / "model.pt", weights_only=True)
    assert "arch_code" in state


def test_vnas_retraining_can_start_from_the_supernet(tmp_path, monkeypatch):
    """``init="supernet"``: the derived network's first weights are the supernet's (same module names), not fresh."""
    import vnas_monai.benchmark.vnas as vnas
    from vnas_monai.cli import main

    starts, original = [], vnas._retrain

    def spy(name, net, *args, **kwargs):
        starts.append({k: v.detach().clone() for k, v in net.state_dict().items()})
        return original(name, net, *args, **kwargs)

    monkeypatch.setattr(vnas, "_retrain", spy)
    register_method("vnas_warm", lambda plan, splits, budget_s, work, seed=0, max_steps=None: vnas.train_vnas(
        plan, splits, budget_s, work, seed, max_steps=2, init="supernet"))
    try:
        main(["benchmark", "--budget_min", "0.1", "--methods", "vnas_warm", "--work_dir", str(tmp_path),
              "--phantom_cases", "8"])
    finally:
        METHODS.pop("vnas_warm", None)
    meta = json.loads((tmp_path / "vnas_warm" / "result.json").read_text())["meta"]
    assert meta["retrain_init"] == "supernet"
    supernet = torch.load(meta["supernet_checkpoint"], weights_only=True)
    (start,) = starts
    shared = [k for k in start if k in supernet and not k.endswith("num_batches_tracked")]
    assert len(shared) == len([k for k in start if not k.endswith("num_batches_tracked")]) - 1  # all but arch_code
    assert all(torch.equal(start[k], supernet[k]) for k in shared)
    with pytest.raises(ValueError, match="init must be one of"):
        vnas.train_vnas({}, {}, 1.0, tmp_path, init="imagenet")


def test_seed_variant_reruns_a_method_with_its_training_seed(data_dir, tmp_path):
    """``benchmarks/seed_variant.py``: same folds and plan, only the method's seed changes; the row is named for it."""
    from tests.test_benchmarks_smoke import import_benchmark_script

    seeds = []

    def method(plan, splits, budget_s, work_dir, seed=0, max_steps=None):
        seeds.append(seed)
        model = _Oracle(len(plan["class_names"]))
        return TrainedModel(model, list(plan["patch_size"]), save_checkpoint(model, work_dir / "model.pt"),
                            {"params": 1, "macs": 2, "train_time_s": 0.0, "steps": 0})

    register_method("seeded_test", method, overwrite=True)
    try:
        md = import_benchmark_script("seed_variant").main(
            ["seeded_test", "3", "0.01", str(tmp_path), "--dataset_dir", str(data_dir)])
    finally:
        METHODS.pop("seeded_test", None)
        METHODS.pop("seeded_test_s3", None)
    assert seeds == [3]
    assert "seeded_test_s3" in md and (tmp_path / "seeded_test_s3" / "result.json").is_file()
