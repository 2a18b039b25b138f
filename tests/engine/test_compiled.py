"""Inference with a compiled network (issue 12): the same predictions as eager, compiled once per state of the
weights, again after the weights change, eager under gradients and where compilation fails."""

from __future__ import annotations

import logging

import pytest
import torch
from monai.data import MetaTensor
from monai.inferers import SlidingWindowInferer
from torch import nn

from vnas_monai.engine import InferenceCompiler, PrecisionInferer


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.BatchNorm3d(4), nn.ReLU(), nn.Conv3d(4, 2, 1)).eval()


def _perturbed_batch_norm(net: nn.Module) -> None:
    with torch.no_grad():
        net[1].running_mean.uniform_(-0.5, 0.5)
        net[1].weight.uniform_(0.5, 1.5)


def test_compiled_sliding_window_matches_eager_and_compiles_once_per_weights():
    torch.manual_seed(0)
    net = _net()
    _perturbed_batch_norm(net)
    # windows of a MetaTensor are MetaTensors; 2 x 2 x 2 windows in batches of 3: the last batch of 2 is padded
    x = MetaTensor(torch.randn(1, 1, 12, 10, 11))
    sliding = SlidingWindowInferer(roi_size=(8, 8, 8), sw_batch_size=3, overlap=0.25)
    eager, compiled = PrecisionInferer(sliding, "fp32"), PrecisionInferer(sliding, "fp32", compile=True)
    with torch.no_grad():
        ref = eager(x, net)
        torch._dynamo.utils.counters.clear()
        out = compiled(x, net)
        assert torch.allclose(out, ref, atol=1e-5), (out - ref).abs().max()
        compiled(x, net)
        assert compiled.compiler.compilations == 1 and compiled.compiler.failed is None
        assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1  # one graph for both batch sizes
        # new weights (as MONAI Label reloading a checkpoint): the frozen graph is stale, so it compiles again
        other = _net()
        net.load_state_dict(other.state_dict())
        assert torch.allclose(compiled(x, net), eager(x, net), atol=1e-5)
        assert compiled.compiler.compilations == 2
    # under gradients: the network itself, never a frozen graph
    assert InferenceCompiler()(net) is net


def test_a_failed_compilation_runs_eagerly_and_says_why(monkeypatch, caplog):
    def broken(*args, **kwargs):  # Inductor fails at the first call, where it compiles
        raise RuntimeError("no C++ compiler\nsecond line")

    monkeypatch.setattr(torch, "compile", lambda network, **kwargs: broken)
    net = _net()
    compiler = InferenceCompiler()
    with torch.no_grad():
        run = compiler(net)
        x = torch.randn(2, 1, 6, 6, 4)
        with caplog.at_level(logging.WARNING):
            y = run(x)
    assert torch.equal(y, net(x)) and compiler.failed == "RuntimeError: no C++ compiler"
    assert "runs eagerly. Cause: RuntimeError: no C++ compiler" in caplog.text
    with torch.no_grad():
        assert compiler(net) is net  # and stays eager


def test_compile_must_be_a_bool():
    with pytest.raises(TypeError, match="compile must be true or false"):
        PrecisionInferer(SlidingWindowInferer(roi_size=(8, 8, 8)), compile="yes")
