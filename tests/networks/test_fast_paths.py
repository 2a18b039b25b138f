"""Every fast form of a V-NAS convolution equals its plain ``Conv3d`` (forward and gradients), in both layouts."""

import pytest
import torch
import torch.nn.functional as F

from vnas_monai.networks.layers import (
    AUTO_TABLE,
    ConvImpl,
    ConvMemoryFormat,
    ConvNormAct,
    SliceConv3d,
    auto_form,
    computing_layout,
    dense_grad,
    is_channels_last,
    kernel_kind,
    same_padding,
    set_conv_memory_format,
    to_channels_last,
    to_contiguous_format,
)
from vnas_monai.spaces.vnas import DECODER_CANDIDATES, ENCODER_CANDIDATES, VNASNet, VNASSupernet

CL = torch.channels_last_3d

# every kernel a V-NAS network convolves with: the candidates' X and Y (with the encoder's in-plane stride on X),
# the stem's 7x7x1 / 2 and 1x1x3, the 1x1x1 reduce/expand/bottleneck convs and the head's 3x3x1
KERNELS = sorted(
    {(k, (1, 1, 1)) for pair in list(ENCODER_CANDIDATES.values()) + list(DECODER_CANDIDATES.values()) for k in pair}
    | {(x, (2, 2, 1)) for x, _ in ENCODER_CANDIDATES.values()}
    | {((7, 7, 1), (2, 2, 1)), ((1, 1, 3), (1, 1, 1)), ((1, 1, 1), (1, 1, 1))}
)
FORMS = [str(f) for f in ConvImpl]
LAYOUTS = [str(f) for f in ConvMemoryFormat]


def _pair(kernel, stride, impl, memory_format, dtype=torch.float32, bias=True):
    torch.manual_seed(0)
    ref = torch.nn.Conv3d(3, 4, kernel, stride=stride, padding=same_padding(kernel), bias=bias).to(dtype)
    fast = SliceConv3d(
        3, 4, kernel, stride=stride, padding=same_padding(kernel), bias=bias, impl=impl, memory_format=memory_format
    ).to(dtype)
    fast.load_state_dict(ref.state_dict())
    return ref, fast


def _run(conv, x, g):
    x = x.detach().clone().requires_grad_(True)
    y = conv(x)
    y.backward(g)
    grads = [x.grad] + [p.grad for p in conv.parameters()]
    return y, grads


@pytest.mark.parametrize("kernel, stride", KERNELS, ids=lambda v: "x".join(map(str, v)))
@pytest.mark.parametrize("impl", FORMS)
@pytest.mark.parametrize("memory_format", LAYOUTS)
@pytest.mark.parametrize("channels_last_input", [False, True], ids=["ncdhw_in", "cl_in"])
def test_every_form_equals_conv3d(kernel, stride, impl, memory_format, channels_last_input):
    """float32: equal within rounding, forward and the gradients of input, weight and bias."""
    ref, fast = _pair(kernel, stride, impl, memory_format)
    torch.manual_seed(1)
    x = torch.randn(2, 3, 8, 10, 6)
    out_shape = ref(x).shape
    g = torch.randn(out_shape)
    y_ref, g_ref = _run(ref, x, g)
    if channels_last_input:
        x, g = x.contiguous(memory_format=CL), g.contiguous(memory_format=CL)
    y, grads = _run(fast, x, g)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    for a, b in zip(grads, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    # the output is laid out as the computation: channels-last when asked (or on CPU for "auto"), else as the input
    wants_cl = memory_format in ("channels_last", "auto") or channels_last_input
    assert y.is_contiguous(memory_format=CL) if wants_cl else y.is_contiguous()


@pytest.mark.parametrize("kernel, stride", KERNELS, ids=lambda v: "x".join(map(str, v)))
@pytest.mark.parametrize("impl", ["matmul", "dilated", "planes", "slices"])
def test_fast_forms_are_exact_in_float64(kernel, stride, impl):
    """In float64 the forms agree to ~1e-12: they reorder the same sums, they do not approximate."""
    ref, fast = _pair(kernel, stride, impl, "channels_last", dtype=torch.float64)
    torch.manual_seed(1)
    x = torch.randn(2, 3, 8, 10, 6, dtype=torch.float64)
    g = torch.randn(ref(x).shape, dtype=torch.float64)
    y_ref, g_ref = _run(ref, x, g)
    y, grads = _run(fast, x, g)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    for a, b in zip(grads, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-11)


def test_auto_picks_the_measured_forms():
    cases = {
        ((1, 1, 1), (1, 1, 1)): "pointwise",
        ((3, 3, 1), (1, 1, 1)): "in_plane",
        ((3, 3, 1), (2, 2, 1)): "in_plane_strided",
        ((7, 7, 1), (2, 2, 1)): "in_plane_strided",
        ((1, 1, 3), (1, 1, 1)): "through_plane",
        ((3, 3, 3), (1, 1, 1)): "full",
        ((3, 3, 3), (2, 2, 1)): "full",
    }
    for (kernel, stride), kind in cases.items():
        _, conv = _pair(kernel, stride, "auto", "auto")
        assert kernel_kind(conv) == kind == conv.kind
        x = torch.randn(1, 3, 4, 4, 2)
        assert conv.form_for(x, True) == AUTO_TABLE["cpu_channels_last"][kind]
        assert conv.form_for(x, False) == AUTO_TABLE["cpu"][kind]
    assert auto_form("pointwise", "cpu", True) == "matmul"
    assert auto_form("in_plane", "cpu", True) == "dilated"
    assert auto_form("full", "cpu", True) == "conv3d"
    assert {auto_form(k, "cpu", True, bf16=True) for k in AUTO_TABLE["cpu"]} == {"conv3d"}
    assert auto_form("pointwise", "cuda", True) == "conv3d"
    # a form that does not apply to a kernel falls back to conv3d
    _, conv = _pair((3, 3, 3), (1, 1, 1), "matmul", "preserve")
    assert conv.form_for(torch.randn(1, 3, 4, 4, 2), False) == "conv3d"


def test_layout_resolution():
    _, conv = _pair((3, 3, 1), (1, 1, 1), "auto", "preserve")
    x = torch.randn(1, 3, 4, 4, 2)
    assert not conv.channels_last_for(x)
    assert conv.channels_last_for(x.contiguous(memory_format=CL))
    assert not conv.channels_last_for(torch.randn(1, 1, 4, 4, 2))  # 1 channel: both layouts, treated as NCDHW
    conv.memory_format = "auto"
    assert conv.channels_last_for(x)  # CPU
    conv.memory_format = "channels_last"
    assert conv.channels_last_for(x)
    assert is_channels_last(x.contiguous(memory_format=CL)) and not is_channels_last(x)
    with pytest.raises(ValueError):
        SliceConv3d(1, 1, 3, memory_format="nhwc")


@pytest.mark.parametrize("preact", [False, True])
def test_conv_norm_act_layouts_agree(preact):
    torch.manual_seed(0)
    a = ConvNormAct(3, 3, 5, (3, 3, 1), preact=preact, conv_impl="conv3d")
    b = ConvNormAct(3, 3, 5, (3, 3, 1), preact=preact, memory_format="channels_last")
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, 8, 8, 4)
    torch.testing.assert_close(b(x), a(x), rtol=1e-5, atol=1e-5)
    assert b(x).is_contiguous(memory_format=CL)


SMALL = dict(in_channels=1, out_channels=3, init_filters=4)
TINY = dict(in_channels=1, out_channels=3, init_filters=2)


def _grads(net, x, y):
    net.zero_grad(set_to_none=True)
    out = net(x)
    F.cross_entropy(out, y).backward()
    return out, {n: p.grad for n, p in net.named_parameters() if p.grad is not None}


def _set_naive(net, naive: bool) -> None:
    """Switch a built network between the naive reference (conv3d, NCDHW) and the fast defaults in place."""
    set_conv_memory_format(net, "preserve" if naive else "auto")
    for m in net.modules():
        if isinstance(m, SliceConv3d):
            m.impl = "conv3d" if naive else "auto"


@pytest.mark.parametrize("search_mode", ["mixed", "sampled"])
def test_supernet_channels_last_equals_ncdhw(search_mode):
    """The fast supernet (auto forms, channels-last) and the naive one (conv3d, NCDHW): same logits, same gradients
    of every weight and of alpha/beta (float64, so that the tolerance is tight)."""
    torch.manual_seed(0)
    net = VNASSupernet(**TINY, search_mode=search_mode).double()
    with torch.no_grad():
        for p in (net.alpha, net.beta):
            p.copy_(torch.linspace(-1, 1, p.numel(), dtype=p.dtype).view_as(p))
    x = torch.randn(2, 1, 32, 32, 32, dtype=torch.float64)
    y = torch.randint(0, 3, (2, 32, 32, 32))
    state = {k: v.clone() for k, v in net.state_dict().items()}
    _set_naive(net, True)
    torch.manual_seed(5)
    out_n, g_n = _grads(net, x, y)
    net.load_state_dict(state)  # BatchNorm running statistics
    _set_naive(net, False)
    torch.manual_seed(5)  # same Gumbel draws in sampled mode
    out_f, g_f = _grads(net, x, y)
    torch.testing.assert_close(out_f, out_n, rtol=1e-9, atol=1e-9)
    assert g_f.keys() == g_n.keys() and "alpha" in g_f
    for k in g_n:
        torch.testing.assert_close(g_f[k], g_n[k], rtol=1e-8, atol=1e-9, msg=k)


def test_discrete_net_and_checkpointing_in_channels_last():
    """VNASNet fast + activation checkpointing against naive without: same logits and gradients (float64)."""
    torch.manual_seed(0)
    net = VNASNet(architecture="msd_pancreas", **TINY).double()
    x = torch.randn(2, 1, 32, 32, 32, dtype=torch.float64)
    y = torch.randint(0, 3, (2, 32, 32, 32))
    _set_naive(net, True)
    out_r, g_r = _grads(net, x, y)
    _set_naive(net, False)
    for m in net.modules():
        if hasattr(m, "checkpointing"):
            m.checkpointing = True
    out_f, g_f = _grads(net, x, y)
    torch.testing.assert_close(out_f, out_r, rtol=1e-9, atol=1e-9)
    for k in g_r:
        torch.testing.assert_close(g_f[k], g_r[k], rtol=1e-8, atol=1e-9, msg=k)


def test_memory_helpers_keep_state_dict():
    net = VNASNet(architecture="nih", **SMALL, memory_format="preserve")
    keys = list(net.state_dict())
    to_channels_last(net)
    assert all(m.memory_format == "channels_last" for m in net.modules() if isinstance(m, SliceConv3d))
    assert net.stem.conv1.conv.weight.is_contiguous(memory_format=CL)
    assert list(net.state_dict()) == keys
    to_contiguous_format(net)
    assert all(m.memory_format == "preserve" for m in net.modules() if isinstance(m, SliceConv3d))
    assert net.stem.conv1.conv.weight.is_contiguous()
    set_conv_memory_format(net, "auto")
    assert all(m.memory_format == "auto" for m in net.modules() if isinstance(m, SliceConv3d))
    # the whole network computes channels-last from its first convolution on (input: NCDHW, 1 channel)
    x = torch.randn(2, 1, 32, 32, 32)
    assert net.stem(x).is_contiguous(memory_format=CL)


@pytest.mark.parametrize("bf16", [False, True])
def test_one_channel_input_computes_channels_last(bf16):
    # a 1-channel tensor is contiguous in both layouts; oneDNN reads the layout from the strides, so the conv gives
    # it channels-last ones: the output is strictly channels-last, with no copy after the convolution
    torch.manual_seed(0)
    conv = SliceConv3d(1, 4, (7, 7, 1), stride=(2, 2, 1), padding=(3, 3, 0), bias=False, memory_format="channels_last")
    x = torch.randn(2, 1, 16, 12, 6)
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
        with torch.profiler.profile(record_shapes=True) as prof:
            y = conv(x)
        ref = torch.nn.functional.conv3d(x, conv.weight, None, (2, 2, 1), (3, 3, 0))
    assert is_channels_last(y) and y.dtype == ref.dtype
    assert not [e for e in prof.events() if e.name == "aten::clone" and list(e.input_shapes[0]) == list(y.shape)]
    torch.testing.assert_close(y.float(), ref.float(), rtol=0.02 if bf16 else 1e-5, atol=0.02 if bf16 else 1e-5)


def test_computing_layout_runs_channels_last_throughout_and_restores():
    """Inside: channels-last parameters *and* convolutions (under bf16 autocast too, where "auto" alone computes
    NCDHW), so activations and their gradients share one layout; outside: NCDHW parameters and each conv's own
    layout back, even when the body raises."""
    net = VNASNet(architecture="nih", **SMALL)
    formats = [m.memory_format for m in net.modules() if isinstance(m, SliceConv3d)]
    x = torch.randn(2, 1, 32, 48, 16)
    with pytest.raises(RuntimeError, match="boom"):
        with computing_layout(net, channels_last=True):
            assert net.stem.conv1.conv.weight.is_contiguous(memory_format=CL)
            with torch.autocast("cpu", torch.bfloat16):
                assert is_channels_last(net.stem(x))
            raise RuntimeError("boom")
    assert [m.memory_format for m in net.modules() if isinstance(m, SliceConv3d)] == formats
    assert net.stem.conv1.conv.weight.is_contiguous()
    with computing_layout(net, channels_last=False):
        assert net.stem.conv1.conv.weight.is_contiguous()


def test_dense_grad_is_an_identity_with_a_dense_gradient():
    a = torch.randn(2, 3, 4, 5, 6).contiguous(memory_format=CL).requires_grad_(True)
    b = torch.randn(2, 2, 4, 5, 6).contiguous(memory_format=CL).requires_grad_(True)
    seen = {}

    def record(name):
        def hook(g):
            seen[name] = g.is_contiguous(memory_format=CL)
        return hook

    out = dense_grad(a)
    out.register_hook(record("into"))
    a.register_hook(record("a"))
    torch.cat([out, b], 1).mul(torch.arange(5.0).view(1, 5, 1, 1, 1)).sum().backward()
    assert seen == {"into": False, "a": True}  # the cat hands back a strided slice; dense_grad makes it dense
    torch.testing.assert_close(a.grad, torch.arange(3.0).view(1, 3, 1, 1, 1).expand_as(a))
    assert dense_grad(b.detach()) is not None and not dense_grad(b.detach()).requires_grad
