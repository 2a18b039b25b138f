"""The precision setting: what ``auto`` picks, forced values, refused values, and the precision-aware engines."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from monai.inferers import SimpleInferer, SlidingWindowInferer

import vnas_monai.engine.precision as precision_mod
from vnas_monai.engine import (
    PrecisionInferer,
    PrecisionTrainer,
    float_logits,
    resolve_precision,
)


def test_auto_picks_bf16_on_cpu_with_bf16_hardware(monkeypatch):
    monkeypatch.setattr(precision_mod, "cpu_bf16_matmul", lambda: (True, "CPU has AMX bf16 tiles"))
    policy = resolve_precision("auto", "cpu")
    assert (policy.name, policy.dtype, policy.autocast_enabled, policy.needs_scaler) == (
        "bf16",
        torch.bfloat16,
        True,
        False,
    )
    assert "AMX" in policy.describe()


def test_auto_picks_fp32_on_cpu_without_bf16_hardware(monkeypatch):
    """The probe is simulated: a CPU without AMX / AVX-512 BF16 must not autocast (emulated bf16 is slower)."""
    monkeypatch.setattr(precision_mod, "cpu_bf16_matmul", lambda: (False, "CPU has no bf16 matrix hardware"))
    policy = resolve_precision("auto", torch.device("cpu"))
    assert policy.name == "fp32" and not policy.autocast_enabled
    assert "no bf16" in policy.describe()
    with policy.autocast():
        assert not torch.is_autocast_enabled("cpu")


def test_probe_reports_this_machine():
    found, why = precision_mod.cpu_bf16_matmul()
    assert isinstance(found, bool) and why
    assert found == (torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())


@pytest.mark.parametrize("setting, name", [("fp32", "fp32"), ("BF16", "bf16"), (" bf16 ", "bf16")])
def test_forced_settings(setting, name):
    assert resolve_precision(setting, "cpu").name == name


def test_unknown_and_unsupported_settings_are_refused():
    with pytest.raises(ValueError, match=r"precision 'half' is not one of .*'precision'"):
        resolve_precision("half", "cpu")
    with pytest.raises(ValueError, match="fp16.*CUDA"):
        resolve_precision("fp16", "cpu")


def test_bf16_autocast_keeps_parameters_float32():
    policy = resolve_precision("bf16", "cpu")
    conv = nn.Conv3d(2, 3, 3, padding=1)
    with policy.autocast():
        y = conv(torch.randn(1, 2, 4, 6, 5))
    assert y.dtype == torch.bfloat16 and conv.weight.dtype == torch.float32
    assert float_logits(y).dtype == torch.float32
    assert [t.dtype for t in float_logits([y, y.float()])] == [torch.float32, torch.float32]
    assert float_logits(torch.ones(2, dtype=torch.int64)).dtype == torch.int64


def _batches(n=2):
    g = torch.Generator().manual_seed(0)
    return [
        {"image": torch.randn(2, 1, 8, 12, 4, generator=g), "label": torch.randint(0, 2, (2, 1, 8, 12, 4), generator=g)}
        for _ in range(n)
    ]


def _loss(pred, label):
    assert pred.dtype == torch.float32, "the loss must see float32 logits"
    return nn.functional.cross_entropy(pred, label[:, 0].long())


def _trainer(net: nn.Module, **kwargs) -> PrecisionTrainer:
    return PrecisionTrainer(
        device=torch.device("cpu"),
        max_epochs=1,
        train_data_loader=_batches(),
        network=net,
        optimizer=torch.optim.SGD(net.parameters(), lr=0.1),
        loss_function=_loss,
        inferer=SimpleInferer(),
        **kwargs,
    )


@pytest.mark.parametrize("setting", ["fp32", "bf16", "auto"])
def test_precision_trainer_runs_each_precision_and_stays_float32(setting):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.BatchNorm3d(4), nn.ReLU(), nn.Conv3d(4, 2, 1))
    before = [p.detach().clone() for p in net.parameters()]
    trainer = _trainer(net, precision=setting)
    trainer.run()
    assert trainer.precision.name == resolve_precision(setting, "cpu").name
    assert not trainer.scaler.is_enabled()
    out = trainer.state.output[0] if isinstance(trainer.state.output, list) else trainer.state.output
    assert out["pred"].dtype == torch.float32 and torch.isfinite(torch.as_tensor(out["loss"]))
    assert all(p.dtype == torch.float32 for p in net.parameters())
    assert any(not torch.equal(a, p) for a, p in zip(before, net.parameters()))


def test_precision_trainer_refuses_monai_amp_flag():
    net = nn.Conv3d(1, 2, 1)
    with pytest.raises(ValueError, match="precision"):
        _trainer(net, amp=True)


def test_precision_inferer_sliding_window_bf16_close_to_fp32():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv3d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv3d(8, 2, 1)).eval()
    x = torch.randn(1, 1, 20, 16, 12)
    sliding = SlidingWindowInferer(roi_size=(8, 8, 8), sw_batch_size=2, overlap=0.25)
    with torch.no_grad():
        ref = PrecisionInferer(sliding, "fp32")(x, net)
        low = PrecisionInferer(sliding, "bf16")(x, net)
    assert ref.dtype == low.dtype == torch.float32 and ref.shape == low.shape == (1, 2, 20, 16, 12)
    assert PrecisionInferer(sliding, "bf16").roi_size == (8, 8, 8)  # the wrapped inferer's settings read through
    # bf16 has an 8-bit mantissa: relative error of a short conv stack stays within a few 2^-8
    assert (low - ref).abs().max() <= 0.03 * ref.abs().max()
    with pytest.raises(ValueError, match="precision"):
        PrecisionInferer(sliding, "int8")
