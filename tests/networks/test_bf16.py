"""bfloat16 autocast through V-NAS networks: every candidate agrees with float32, activations stay bf16 end to end
(no silent float32 promotion by pools, mixing weights or concatenations), and the auto layout (NCDHW for bf16
training of narrow networks, channels-last otherwise)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from vnas_monai.networks.layers import MaxPool3d, SliceConv3d, block_max, max_pool3d
from vnas_monai.spaces.vnas import VNASNet, VNASSupernet
from vnas_monai.spaces.vnas.decoder import DecoderCell
from vnas_monai.spaces.vnas.encoder import EncoderCell
from vnas_monai.spaces.vnas.encoding import OP_NAMES

BF16 = dict(device_type="cpu", dtype=torch.bfloat16)

#: bf16 keeps 8 mantissa bits (relative rounding 2^-9 per value); after a few convs and batch norms the outputs
#: of a candidate agree with float32 to within this fraction of their largest magnitude
CANDIDATE_RTOL = 0.05


def _rel_err(low: torch.Tensor, ref: torch.Tensor) -> float:
    return float((low.float() - ref).abs().max() / ref.abs().max().clamp_min(1e-6))


@pytest.mark.parametrize("op", OP_NAMES)
@pytest.mark.parametrize("stride", [1, 2])
def test_encoder_candidate_bf16_matches_fp32(op, stride):
    torch.manual_seed(0)
    cell = EncoderCell(8, 4, stride, [op], act="relu", norm="batch").eval()
    x = torch.randn(2, 8, 8, 12, 6)
    with torch.no_grad():
        ref = cell(x, None, None)
        with torch.autocast(**BF16):
            low = cell(x, None, None)
    assert low.dtype == torch.bfloat16 and low.shape == ref.shape
    assert _rel_err(low, ref) < CANDIDATE_RTOL


@pytest.mark.parametrize("op", OP_NAMES)
def test_decoder_candidate_bf16_matches_fp32(op):
    torch.manual_seed(0)
    cell = DecoderCell(6, [op], act="relu", norm="batch", num_layers=2, growth=3, bn_size=2).eval()
    x = torch.randn(2, 6, 8, 12, 4)
    with torch.no_grad():
        ref = cell(x)
        with torch.autocast(**BF16):
            low = cell(x.bfloat16())
    assert low.dtype == torch.bfloat16 and low.shape == ref.shape
    assert _rel_err(low, ref) < CANDIDATE_RTOL


def _float32_outputs(net: nn.Module, x: torch.Tensor) -> list[str]:
    """Names of the modules whose output is float32 under bf16 autocast (each is a silent promotion)."""
    found: list[str] = []
    hooks = [
        m.register_forward_hook(
            lambda m, i, o, n=n: found.append(n) if isinstance(o, torch.Tensor) and o.dtype == torch.float32 else None
        )
        for n, m in net.named_modules()
        if n
    ]
    with torch.autocast(**BF16):
        out = net(x)
    for h in hooks:
        h.remove()
    assert out.dtype == torch.bfloat16
    return found


@pytest.mark.parametrize("mode", ["mixed", "sampled"])
def test_supernet_stays_bf16_end_to_end(mode):
    torch.manual_seed(0)
    net = VNASSupernet(in_channels=1, out_channels=3, init_filters=4, search_mode=mode).train()
    assert _float32_outputs(net, torch.randn(2, 1, 64, 32, 32)) == []
    assert all(p.dtype == torch.float32 for p in net.parameters())


def test_discrete_net_stays_bf16_and_scripts():
    net = VNASNet(in_channels=2, out_channels=2, architecture="nih", init_filters=4).eval()
    with torch.no_grad():
        assert _float32_outputs(net, torch.randn(1, 2, 32, 64, 32)) == []
        scripted = torch.jit.script(net)
        x = torch.randn(1, 2, 32, 64, 32)
        assert torch.allclose(scripted(x), net(x), atol=1e-5)


def test_pools_keep_dtype_under_autocast_and_equal_plain_pool():
    x = torch.randn(2, 3, 8, 6, 4).bfloat16()
    with torch.autocast(**BF16):
        assert torch.nn.functional.max_pool3d(x, 2, 2).dtype == torch.float32  # the autocast policy we step out of
        a = MaxPool3d((2, 2, 1), (2, 2, 1))(x)
        b = max_pool3d(x, [2, 2, 2], [2, 2, 2])
    assert a.dtype == b.dtype == torch.bfloat16
    assert torch.equal(a, torch.nn.functional.max_pool3d(x, (2, 2, 1), (2, 2, 1)))
    assert torch.equal(b, torch.nn.functional.max_pool3d(x, 2, 2))
    meta = torch.empty(1, 1, 4, 4, 4, device="meta")
    assert MaxPool3d(2, 2)(meta).shape == (1, 1, 2, 2, 2)


@pytest.mark.parametrize("shape,kernel", [((2, 3, 17, 9, 12), (1, 1, 2)), ((1, 2, 40, 24, 5), (8, 6, 1)),
                                          ((1, 1, 9, 7, 6), (3, 7, 3)), ((2, 5, 48, 20, 4), (48, 20, 1))])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_block_max_equals_max_pool3d_in_both_layouts(shape, kernel, dtype):
    torch.manual_seed(0)
    x = torch.randn(shape).to(dtype)
    expected = torch.nn.functional.max_pool3d(x, kernel, kernel)
    for t in (x, x.contiguous(memory_format=torch.channels_last_3d)):
        with torch.no_grad():
            y = block_max(t, kernel)
            assert torch.equal(y, expected) and y.dtype == dtype
            assert torch.equal(MaxPool3d(kernel, kernel)(t), expected)
            assert torch.equal(max_pool3d(t, list(kernel), list(kernel)), expected)


def test_pools_with_gradients_keep_max_pool3d_backward():
    # the fast path is for inference: with gradients the pool is max_pool3d's, ties included
    x = torch.zeros(1, 2, 4, 4, 4, requires_grad=True)
    MaxPool3d((1, 1, 2), (1, 1, 2))(x).sum().backward()
    assert x.grad.sum() == 64 and set(x.grad.unique().tolist()) == {0.0, 1.0}  # one input per window, not halves


def test_auto_layout_on_cpu_channels_last_except_bf16_training():
    conv = SliceConv3d(4, 4, (3, 3, 1), padding=(1, 1, 0), memory_format="auto")
    x = torch.randn(1, 4, 8, 8, 4)
    assert conv.channels_last_for(x)
    assert conv.form_for(x, True) == "dilated"  # float32 channels-last: the 3x3x1 kernel as a dilated conv2d
    with torch.autocast(**BF16):
        assert not conv.channels_last_for(x)  # bf16 training: NCDHW
        y = conv(x)
        with torch.no_grad():  # bf16 inference: channels-last, oneDNN's conv for every kind
            assert conv.channels_last_for(x) and conv.form_for(x, True) == "conv3d"
            z = conv(x)
    assert y.is_contiguous() and y.dtype == torch.bfloat16
    assert z.is_contiguous(memory_format=torch.channels_last_3d) and z.dtype == torch.bfloat16
    torch.testing.assert_close(z.float(), y.float(), rtol=0.02, atol=0.02)


@pytest.mark.parametrize("init_filters", [16, 32])
def test_auto_layout_in_bf16_training_is_channels_last_for_wide_networks(init_filters):
    """From ``init_filters`` 32 on (measured faster there), every convolution of a V-NAS network computes
    channels-last under CPU bf16 training too (gradients recorded); below, NCDHW. Outputs agree with float32 in
    either layout."""
    torch.manual_seed(0)
    net = VNASNet(3, 1, 2, "nih", init_filters).eval()  # running statistics: the layouts' outputs compare closely
    convs = [m for m in net.modules() if isinstance(m, SliceConv3d)]
    x = torch.randn(1, 1, 32, 64, 32)
    with torch.autocast(**BF16):
        layouts = {m.channels_last_for(torch.randn(1, m.in_channels, 4, 4, 4)) for m in convs}
        low = net(x)
    assert layouts == {init_filters >= 32}
    assert low.dtype == torch.bfloat16
    assert _rel_err(low, net(x)) < CANDIDATE_RTOL


def test_bf16_search_gradients_reach_alpha_and_every_weight():
    torch.manual_seed(0)
    net = VNASSupernet(in_channels=1, out_channels=2, init_filters=4).train()
    x, y = torch.randn(2, 1, 32, 64, 32), torch.randint(0, 2, (2, 32, 64, 32))
    with torch.autocast(**BF16):
        out = net(x)
    nn.functional.cross_entropy(out.float(), y).backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert missing == []
    assert net.alpha.grad.abs().sum() > 0 and net.beta.grad.abs().sum() > 0
    assert all(p.grad.dtype == torch.float32 for p in net.parameters())


@pytest.mark.parametrize("kernel", [(3, 3, 1), (3, 3, 3)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_bf16_gradients_finite_on_inputs_two_high(kernel, channels_last):
    # torch 2.13's oneDNN bf16 Conv3d gives non-finite weight gradients here (V-NAS's 1/16 level of a 32-voxel
    # axis) in most calls; SliceConv3d runs such convolutions in float32
    torch.manual_seed(0)
    conv = SliceConv3d(64, 64, kernel, padding=tuple(k // 2 for k in kernel), bias=False, memory_format="auto")
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    conv.to(memory_format=fmt)
    for _ in range(3):
        conv.weight.grad = None
        x = torch.randn(4, 64, 2, 4, 2).contiguous(memory_format=fmt).requires_grad_(True)
        with torch.autocast(**BF16):
            y = conv(x)
        assert y.dtype == torch.bfloat16
        y.float().pow(2).sum().backward()
        assert torch.isfinite(conv.weight.grad).all() and torch.isfinite(x.grad).all()
