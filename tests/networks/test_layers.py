import pytest
import torch

from vnas_monai.networks.layers import ConvNormAct, SliceConv3d, same_padding
from vnas_monai.spaces.vnas import get_candidate
from vnas_monai.spaces.vnas.candidates import op_name


@pytest.mark.parametrize(
    "kernel, stride, in_shape, out_shape",
    [
        ((3, 3, 1), 1, (2, 3, 12, 10, 6), (2, 5, 12, 10, 6)),
        ((3, 3, 3), 1, (1, 3, 12, 10, 6), (1, 5, 12, 10, 6)),
        ((1, 1, 3), 1, (1, 3, 12, 10, 6), (1, 5, 12, 10, 6)),
        ((3, 3, 1), (2, 2, 1), (1, 3, 12, 10, 6), (1, 5, 6, 5, 6)),
        ((7, 7, 1), (2, 2, 1), (1, 3, 16, 12, 4), (1, 5, 8, 6, 4)),
    ],
)
@pytest.mark.parametrize("preact", [False, True])
def test_conv_norm_act_shapes(kernel, stride, in_shape, out_shape, preact):
    layer = ConvNormAct(3, in_shape[1], out_shape[1], kernel, stride, preact=preact)
    assert layer.conv.padding == same_padding(kernel)
    assert layer(torch.randn(in_shape)).shape == out_shape


def test_norm_and_act_specs_are_monai_style():
    layer = ConvNormAct(3, 4, 8, 3, act=("leakyrelu", {"negative_slope": 0.1}), norm=("group", {"num_groups": 2}))
    assert isinstance(layer.norm, torch.nn.GroupNorm) and layer.norm.num_groups == 2
    assert isinstance(layer.act, torch.nn.LeakyReLU)
    assert layer.conv.bias is None
    bare = ConvNormAct(3, 4, 8, 3, act=None, norm=None)
    assert bare.conv.bias is not None


def test_bad_layer_arguments():
    with pytest.raises(ValueError, match="spatial_dims must be 3"):
        ConvNormAct(2, 1, 1, 3)
    with pytest.raises(ValueError, match="odd"):
        ConvNormAct(3, 1, 1, (2, 2, 1))
    with pytest.raises(ValueError, match="3 ints"):
        ConvNormAct(3, 1, 1, (3, 3))
    with pytest.raises(ValueError):
        SliceConv3d(1, 1, 3, impl="fast")


@pytest.mark.parametrize(
    "kernel, stride", [((3, 3, 1), 1), ((1, 1, 1), 1), ((3, 3, 1), (2, 2, 1)), ((7, 7, 1), (2, 2, 1))]
)
def test_slice_conv_equals_conv3d(kernel, stride):
    torch.manual_seed(0)
    ref = SliceConv3d(3, 4, kernel, stride=stride, padding=same_padding(kernel), impl="conv3d")
    fast = SliceConv3d(3, 4, kernel, stride=stride, padding=same_padding(kernel), impl="slices")
    fast.load_state_dict(ref.state_dict())
    assert "slices" in fast.applicable
    x1 = torch.randn(2, 3, 10, 12, 5, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    y1, y2 = ref(x1), fast(x2)
    torch.testing.assert_close(y2, y1, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(y1)
    y1.backward(g)
    y2.backward(g)
    torch.testing.assert_close(x2.grad, x1.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast.weight.grad, ref.weight.grad, rtol=1e-4, atol=1e-4)


def test_candidate_tables():
    assert get_candidate("encoder", "2d") == ((3, 3, 1), (1, 1, 1))
    assert get_candidate("encoder", 1) == ((3, 3, 3), (1, 1, 1))
    assert get_candidate("encoder", "p3d") == ((3, 3, 1), (1, 1, 3))
    assert get_candidate("decoder", 0) == ((3, 3, 1), (3, 3, 1))
    assert get_candidate("decoder", "3d") == ((3, 3, 3), (3, 3, 3))
    assert get_candidate("decoder", 2) == ((3, 3, 1), (1, 1, 3))
    with pytest.raises(ValueError, match="unknown candidate '4d'"):
        get_candidate("encoder", "4d")
    with pytest.raises(ValueError, match="unknown candidate table"):
        get_candidate("middle", "2d")
    with pytest.raises(ValueError, match="code 0"):
        op_name(3)
