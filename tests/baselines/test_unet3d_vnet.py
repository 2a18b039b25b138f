"""The ``unet3d`` (Çiçek et al.) and ``vnet`` (Milletari et al.) baselines: networks, and two recipe steps through
the benchmark's method functions on the embedded phantoms."""

from __future__ import annotations

import pytest
import torch

from vnas_monai.baselines import TrainedModel, build_unet3d, build_vnet
from vnas_monai.baselines.pipeline import eval_dataset
from vnas_monai.baselines.training import predict_cases
from vnas_monai.benchmark import get_method
from vnas_monai.data import fold_datalists, make_phantom_dataset
from vnas_monai.engine import resolve_precision
from vnas_monai.plan import compute_plan


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    root = make_phantom_dataset(tmp_path_factory.mktemp("phantoms") / "ds", num_cases=8, shape=(40, 36, 12),
                                spacing=(1.0, 1.0, 2.0), num_classes=3)
    splits = fold_datalists(root, fold=0, num_folds=4)
    return compute_plan(root, splits["trainval"]), splits


def _forward_backward(net: torch.nn.Module, shape: tuple[int, ...], num_classes: int) -> None:
    torch.manual_seed(0)
    net.train()
    x = torch.randn(2, 1, *shape)
    out = net(x)
    assert out.shape == (2, num_classes, *shape)
    loss = torch.nn.functional.cross_entropy(out, torch.randint(0, num_classes, (2, *shape)))
    loss.backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()
               or not p.grad.abs().sum() > 0]
    assert not missing, f"parameters without a gradient: {missing}"


def test_unet3d_is_the_papers_network():
    net = build_unet3d(1, 3)
    _forward_backward(net, (16, 24, 8), 3)  # 3 poolings: a multiple of 8 per axis, non-cubic
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv3d) and m.kernel_size == (3, 3, 3)]
    # analysis 1->32->64, 64->64->128, 128->128->256, 256->256->512; synthesis 768->256->256, 384->128, 192->64
    assert [(c.in_channels, c.out_channels) for c in convs] == [
        (1, 32), (32, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 512),
        (768, 256), (256, 256), (384, 128), (128, 128), (192, 64), (64, 64)]
    ups = [m for m in net.modules() if isinstance(m, torch.nn.ConvTranspose3d)]
    assert [(u.in_channels, u.out_channels, u.kernel_size, u.stride) for u in ups] == [
        (c, c, (2, 2, 2), (2, 2, 2)) for c in (512, 256, 128)]
    assert sum(isinstance(m, torch.nn.BatchNorm3d) for m in net.modules()) == 14
    assert sum(isinstance(m, torch.nn.MaxPool3d) for m in net.modules()) == 1  # shared by the 3 poolings
    assert sum(p.numel() for p in net.parameters()) == 19_071_459  # the paper: 19,069,955 (convolution biases, no BN)
    with pytest.raises(RuntimeError):
        net(torch.randn(1, 1, 12, 16, 8))  # 12 is not a multiple of 8: the skip connections do not match


def test_vnet_builds_and_every_parameter_learns():
    _forward_backward(build_vnet(1, 3), (16, 32, 48), 3)  # 4 down-samplings: a multiple of 16 per axis


@pytest.mark.parametrize("name, divisible_by", [("unet3d", 8), ("vnet", 16)])
def test_method_trains_two_steps_saves_and_predicts(phantoms, tmp_path, name, divisible_by):
    plan, splits = phantoms
    trained = get_method(name)(plan, splits, budget_s=3600.0, work_dir=tmp_path, max_steps=2)  # steps, not time
    assert isinstance(trained, TrainedModel) and trained.meta["steps"] == 2 and trained.meta["method"] == name
    assert all(r % divisible_by == 0 for r in trained.roi_size) and trained.meta["recipe"]["precision"] == "auto"
    # bf16 where the CPU has bf16 matrix hardware, float32 elsewhere (emulated bf16 is minutes per VNet step)
    assert trained.meta["precision"] == resolve_precision("auto", "cpu").name
    assert trained.meta["params"] > 0 and trained.meta["macs"] > 0 and not trained.model.training
    assert all(p.dtype == torch.float32 for p in trained.model.parameters())
    state = torch.load(trained.checkpoint, weights_only=True)
    assert set(state) == set(trained.model.state_dict())
    item, pred = next(iter(predict_cases(trained.model, eval_dataset(splits["test"], plan), trained.roi_size)))
    assert pred.shape == item["label"].shape and pred.dtype == torch.int64
    assert set(torch.unique(pred).tolist()) <= set(range(len(plan["class_names"])))
