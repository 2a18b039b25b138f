"""NAS-3D-U-Net's op tables (Wang, BraTS 2019, Table 1), the shared factory's dilation / groups / transposition and
the hybrid module."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vnas_monai.networks.layers import ConvNormAct, same_padding
from vnas_monai.spaces.nas3dunet import DOWN_OPS, NORMAL_OPS, OP_TABLES, UP_OPS, HybridModule, make_op, norm_for
from vnas_monai.spaces.nas3dunet.ops import _BUILDERS

SHAPE = (2, 6, 16, 24, 16)  # non-cubic; 6 channels: GroupNorm(8) must fit itself to 6
EXPECTED = {"down": (2, 6, 8, 12, 8), "up": (2, 6, 32, 48, 32), "normal": SHAPE}


def test_tables_are_the_papers():
    assert DOWN_OPS == ("d_conv", "d_dil_conv", "d_dep_conv", "d_se_conv", "max_pool", "avg_pool")
    assert UP_OPS == ("u_conv", "u_dil_conv", "u_dep_conv", "u_se_conv")
    assert NORMAL_OPS == ("conv", "dil_conv", "dep_conv", "se_conv", "identity")
    assert set(_BUILDERS) == {(kind, op) for kind, ops in OP_TABLES.items() for op in ops}


@pytest.mark.parametrize("kind, op", [(kind, op) for kind, ops in OP_TABLES.items() for op in ops])
def test_every_op_keeps_channels_and_scales_the_size(kind, op):
    torch.manual_seed(0)
    module = make_op(kind, op, 6)
    y = module(torch.randn(SHAPE))
    assert y.shape == EXPECTED[kind] and torch.isfinite(y).all()
    convs = [m for m in module.modules() if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d))]
    if op.endswith("pool"):
        assert not convs and not list(module.parameters())
        return
    norms = [m for m in module.modules() if isinstance(m, nn.GroupNorm)]
    assert norms and all(n.num_channels == 6 and n.num_groups == 6 for n in norms)  # GroupNorm after the conv
    assert any(isinstance(m, nn.ReLU) for m in module.modules())
    if op == "identity":
        assert not convs
        return
    assert convs[0].kernel_size == (3, 3, 3) and all(c.out_channels == 6 for c in convs)  # 3x3x3, channels kept
    assert isinstance(convs[0], nn.ConvTranspose3d) == (kind == "up")
    assert convs[0].stride == ((1, 1, 1) if kind == "normal" else (2, 2, 2))
    assert convs[0].dilation == ((2, 2, 2) if "dil" in op else (1, 1, 1))
    assert convs[0].groups == (6 if "dep" in op else 1)
    if "dep" in op:
        assert convs[1].kernel_size == (1, 1, 1)  # the pointwise half
    if "se" in op:
        assert (y >= 0).all()  # ReLU output rescaled by a sigmoid gate


def test_unknown_op_names_list_the_known_ones():
    with pytest.raises(ValueError, match=r"'conv' is not a DHM op; known DHM ops: d_conv, d_dil_conv, d_dep_conv"):
        make_op("down", "conv", 4)
    with pytest.raises(ValueError, match=r"'max_pool' is not a UHM op; known UHM ops: u_conv, "):
        make_op("up", "max_pool", 4)
    with pytest.raises(ValueError, match=r"unknown hybrid-module kind 'side'; known: down, up, normal"):
        make_op("side", "conv", 4)
    with pytest.raises(ValueError, match="'sep_conv' is not a NHM op"):
        HybridModule("normal", 4, ["conv", "sep_conv"])


def test_norm_spec_fits_each_width():
    assert norm_for(("group", {"num_groups": 8}), 12) == ("group", {"num_groups": 6})
    assert norm_for(("group", {"num_groups": 8}), 32) == ("group", {"num_groups": 8})
    assert norm_for("group", 1) == ("group", {"num_groups": 1})
    assert norm_for("batch", 5) == "batch" and norm_for(None, 5) is None
    layer = make_op("normal", "conv", 4, act=("leakyrelu", {"negative_slope": 0.1}), norm=("instance", {}))
    assert isinstance(layer.norm, nn.InstanceNorm3d) and isinstance(layer.act, nn.LeakyReLU)


def test_factory_grows_dilation_groups_and_transposition():
    assert same_padding((3, 3, 3), 2) == (2, 2, 2) and same_padding((3, 3, 1), (2, 2, 1)) == (2, 2, 0)
    x = torch.randn(1, 4, 8, 12, 6)
    dil = ConvNormAct(3, 4, 4, 3, 1, dilation=2)
    assert dil.conv.padding == (2, 2, 2) and dil(x).shape == x.shape
    dep = ConvNormAct(3, 4, 8, 3, 2, groups=4, norm=None)
    assert dep.conv.groups == 4 and dep(x).shape == (1, 8, 4, 6, 3)
    up = ConvNormAct(3, 4, 2, 3, 2, transposed=True, dilation=2)
    assert isinstance(up.conv, nn.ConvTranspose3d) and up(x).shape == (1, 2, 16, 24, 12)
    assert set(up.state_dict()) == {"conv.weight", "norm.weight", "norm.bias", "norm.running_mean",
                                    "norm.running_var", "norm.num_batches_tracked"}
    with pytest.raises(ValueError, match="groups=3 must divide in_channels=4"):
        ConvNormAct(3, 4, 6, 3, groups=3)
    with pytest.raises(ValueError, match="dilation"):
        same_padding((3, 3, 3), 0)


def test_hybrid_module_is_the_weighted_sum():
    torch.manual_seed(0)
    hm = HybridModule("down", 4, list(DOWN_OPS)).eval()
    x = torch.randn(1, 4, 8, 8, 8)
    w = torch.softmax(torch.randn(len(DOWN_OPS)), 0)
    with torch.no_grad():
        expected = sum(wi * op(x) for wi, op in zip(w, hm.ops.values()))
        torch.testing.assert_close(hm(x, w), expected)
        single = HybridModule("down", 4, ["d_se_conv"]).eval()
        # the same module names: the chosen op's weights move by state_dict key
        single.load_state_dict({k: v for k, v in hm.state_dict().items() if k.startswith("ops.d_se_conv.")})
        torch.testing.assert_close(single(x), hm(x, torch.eye(len(DOWN_OPS))[3]))
