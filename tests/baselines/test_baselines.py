"""The baselines' budgeted loop, topology rule and recipes, on a tiny synthetic dataset (a step or two each)."""

from __future__ import annotations

import time

import pytest
import torch

from tests.plan.synthetic import make_dataset
from vnas_monai.baselines import SCHEDULES, TrainedModel, train_budgeted
from vnas_monai.baselines.dynunet import build_dynunet, nnunet_topology, train_dynunet
from vnas_monai.baselines.pipeline import eval_dataset, make_loader
from vnas_monai.baselines.segresnet import train_segresnet
from vnas_monai.baselines.training import predict_cases
from vnas_monai.baselines.unet import train_unet
from vnas_monai.data import fold_datalists
from vnas_monai.plan import compute_plan


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = make_dataset(tmp_path_factory.mktemp("baselines") / "ds", num_cases=8)
    splits = fold_datalists(root, fold=0, num_folds=4)
    return compute_plan(root, splits["trainval"]), splits


def test_schedules_span_the_budget():
    assert SCHEDULES["poly"](0.0) == 1.0 and SCHEDULES["poly"](1.0) == 0.0
    assert SCHEDULES["poly"](0.5) == pytest.approx(0.5**0.9)
    assert SCHEDULES["cosine"](0.5) == pytest.approx(0.5) and SCHEDULES["cosine"](1.2) == pytest.approx(0.0)


def test_loader_follows_the_plan(setup):
    plan, splits = setup
    batch = next(iter(make_loader(splits["trainval"], plan)))
    n = plan["batch_size"] * plan["num_samples"]
    assert tuple(batch["image"].shape) == (n, 1, *plan["patch_size"])
    assert tuple(batch["label"].shape) == (n, 1, *plan["patch_size"])
    assert set(torch.unique(batch["label"]).tolist()) <= {0, 1, 2}
    assert abs(float(batch["image"].mean())) < 1.5  # z-scored


def test_train_budgeted_stops_on_time_and_decays_lr():
    model = torch.nn.Conv3d(1, 2, 3, padding=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    batch = {"image": torch.randn(2, 1, 8, 12, 6), "label": torch.randint(0, 2, (2, 1, 8, 12, 6))}

    def loss(out, y):
        time.sleep(0.01)
        return torch.nn.functional.cross_entropy(out, y[:, 0].long())

    t = time.perf_counter()
    stats = train_budgeted(model, loss, opt, [batch] * 3, budget_s=0.3, schedule="poly")
    assert 0.3 <= time.perf_counter() - t < 2.0
    assert stats["steps"] >= 3 and stats["epochs"] >= 1
    assert opt.param_groups[0]["lr"] < 0.1 * SCHEDULES["poly"](0.5)
    with pytest.raises(ValueError, match="schedule must be one of"):
        train_budgeted(model, loss, opt, [batch], 1.0, schedule="step")


def test_nnunet_topology_of_anisotropic_ct():
    topo = nnunet_topology([0.8, 0.8, 3.0], [200, 200, 40])
    assert topo["kernel_size"][0] == [3, 3, 1]  # no 3-voxel kernel across thick slices
    assert topo["strides"][1] == [2, 2, 1]  # in-plane pooling first, until spacings meet
    assert topo["strides"][2] == [2, 2, 2]
    assert all(p % d == 0 for p, d in zip(topo["patch_size"], topo["divisible_by"]))
    assert topo["divisible_by"] == [32, 32, 8] and len(topo["kernel_size"]) == len(topo["strides"])


def test_nnunet_topology_of_hippocampus_matches_nnunet():
    topo = nnunet_topology([1.0, 1.0, 1.0], [35, 50, 36])
    assert topo["patch_size"] == [40, 56, 40]  # nnU-Net's published Task04 3D patch
    assert len(topo["strides"]) == 4


def test_dynunet_deep_supervision_shapes():
    topo = nnunet_topology([1.0, 1.0, 2.0], [24, 32, 12])
    net = build_dynunet(topo, 1, 3)
    x = torch.randn(2, 1, *topo["patch_size"])
    net.train()
    assert net(x).shape[:3] == (2, 1 + 2, 3)
    net.eval()
    assert net(x).shape == (2, 3, *topo["patch_size"])


@pytest.mark.parametrize("train", [train_unet, train_dynunet, train_segresnet], ids=["unet", "dynunet", "segresnet"])
def test_recipe_trains_saves_and_predicts(setup, tmp_path, train):
    plan, splits = setup
    trained = train(plan, splits, budget_s=60.0, work_dir=tmp_path, max_steps=2)
    assert isinstance(trained, TrainedModel) and trained.meta["steps"] == 2
    assert trained.meta["params"] > 0 and trained.meta["macs"] > 0
    state = torch.load(trained.checkpoint, weights_only=True)
    assert set(state) == set(trained.model.state_dict())
    item, pred = next(iter(predict_cases(trained.model, eval_dataset(splits["test"], plan), trained.roi_size)))
    assert pred.shape == item["label"].shape and pred.dtype == torch.int64


def test_empty_trainval_is_refused(setup, tmp_path):
    plan, splits = setup
    with pytest.raises(ValueError, match=r"splits\['trainval'\] is empty"):
        train_unet(plan, {**splits, "trainval": []}, 1.0, tmp_path)


def test_bf16_autocast_keeps_fp32_weights_and_learns():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv3d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv3d(8, 2, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    y = (torch.rand(2, 1, 8, 12, 6) > 0.5).long()
    batch = {"image": y.float() * 2 - 1, "label": y}

    def ce(out, lab):
        assert out.dtype == torch.float32
        return torch.nn.functional.cross_entropy(out, lab[:, 0])

    first = float(ce(model(batch["image"]), y).detach())
    stats = train_budgeted(model, ce, opt, [batch], budget_s=60.0, max_steps=30, precision="bf16")
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert stats["final_loss"] < 0.5 * first
    with pytest.raises(ValueError, match="precision .fp16. is for CUDA"):
        train_budgeted(model, ce, opt, [batch], 1.0, precision="fp16")


def test_ema_leaves_the_average_of_the_weights_and_bn_statistics():
    """``ema_decay``: the model ends holding the moving average that :class:`WeightAverage` computes step by step."""
    from vnas_monai.baselines.training import WeightAverage

    torch.manual_seed(0)
    make = lambda: torch.nn.Sequential(torch.nn.Conv3d(1, 4, 3, padding=1), torch.nn.BatchNorm3d(4),  # noqa: E731
                                       torch.nn.Conv3d(4, 2, 1))
    model = make()
    twin = make()
    twin.load_state_dict(model.state_dict())
    batches = [{"image": torch.randn(2, 1, 6, 8, 4), "label": torch.randint(0, 2, (2, 1, 6, 8, 4))} for _ in range(4)]
    ce = lambda out, y: torch.nn.functional.cross_entropy(out, y[:, 0])  # noqa: E731
    train_budgeted(model, ce, torch.optim.SGD(model.parameters(), lr=0.1), batches, 60.0, max_steps=4,
                   channels_last=False, ema_decay=0.5)
    # the same steps by hand
    opt, ema = torch.optim.SGD(twin.parameters(), lr=0.1), WeightAverage(twin, 0.5)
    twin.train()
    for b in batches:
        opt.zero_grad()
        ce(twin(b["image"]), b["label"]).backward()
        opt.step()
        ema.update()
    last = {k: v.clone() for k, v in twin.state_dict().items()}
    ema.copy_to(twin)
    for key, value in twin.state_dict().items():
        assert torch.allclose(model.state_dict()[key], value, atol=1e-6), key
    assert not torch.allclose(last["0.weight"], model.state_dict()["0.weight"])  # the average, not the last step
    assert torch.equal(model.state_dict()["1.num_batches_tracked"], last["1.num_batches_tracked"])
    with pytest.raises(ValueError, match="ema_decay must lie in"):
        train_budgeted(model, ce, torch.optim.SGD(model.parameters(), lr=0.1), batches, 1.0, ema_decay=1.0)


def test_make_optimizer_builds_each_recipe_optimizer():
    from vnas_monai.baselines.common import make_optimizer

    p = [torch.nn.Parameter(torch.zeros(2))]
    sgd = make_optimizer(p, {"optimizer": "SGD nesterov", "lr": 0.01, "momentum": 0.99, "weight_decay": 3e-5})
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["nesterov"] and sgd.defaults["momentum"] == 0.99
    assert not make_optimizer(p, {"optimizer": "SGD", "lr": 0.05, "momentum": 0.9}).defaults["nesterov"]
    assert type(make_optimizer(p, {"optimizer": "Adam", "lr": 1e-3})) is torch.optim.Adam
    assert make_optimizer(p, {"optimizer": "AdamW", "lr": 2e-4, "weight_decay": 1e-5}).defaults["weight_decay"] == 1e-5
    with pytest.raises(ValueError, match="'Lion'"):
        make_optimizer(p, {"optimizer": "Lion", "lr": 1e-4})
