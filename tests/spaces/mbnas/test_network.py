"""MB-NAS networks (Bosma et al. 2022, §2.1, Fig. 1): every block x kernel in 2D and 3D, the U-Net's structure,
random encodings of the rule, gradients, cost and the figure."""

from __future__ import annotations

import random

import pytest
import torch

from vnas_monai.spaces import get_space
from vnas_monai.spaces.mbnas import BLOCK_TYPES, KERNEL_SIZES, NO_SKIP, MBNASEncoding, repair, unet_encoding
from vnas_monai.spaces.mbnas.blocks import get_block
from vnas_monai.spaces.mbnas.cost import cost_report
from vnas_monai.spaces.mbnas.network import MBNASNet, build_network

SHAPES = {2: (1, 2, 32, 48), 3: (1, 1, 16, 32, 24)}


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("block", BLOCK_TYPES)
def test_every_block_and_kernel_keeps_the_shape(block, dims):
    torch.manual_seed(0)
    x = torch.randn(2, 3, *SHAPES[dims][2:])
    for kernel in KERNEL_SIZES:
        out = get_block(block)(dims, 3, 8, kernel, "relu", "batch")(x)
        assert out.shape == (2, 8, *x.shape[2:]) and torch.isfinite(out).all()
        convs = [m for m in get_block(block)(dims, 3, 8, kernel).modules()
                 if isinstance(m, torch.nn.modules.conv._ConvNd)]
        assert {len(c.kernel_size) for c in convs} == {dims}
        assert max(c.kernel_size[0] for c in convs) == kernel  # the node's size is the block's convolution size
    with pytest.raises(KeyError, match="unknown MB-NAS block type 'transformer'"):
        get_block("transformer")


def test_unet_network_structure():
    net = build_network(unet_encoding(), spatial_dims=2, in_channels=2, out_channels=3, init_channels=4)
    scales = [cell.scale_mode for cell in net.cells]
    assert scales == ["same"] + ["down"] * 4 + ["up"] * 4 + ["same"]
    assert [type(c.scale).__name__ for c in net.cells[1:5]] == ["MaxPool2d"] * 4
    widths = [cell.block[-1].conv.out_channels for cell in net.cells]
    assert widths == [4, 8, 16, 32, 64, 32, 16, 8, 4, 4]
    # up cells: transposed conv halving the channels, then the encoder skip of that width concatenated
    for node, skip in zip(range(5, 9), (3, 2, 1, 0)):
        up = net.cells[node]
        assert net.skips[node] == skip and up.has_skip
        assert up.block[0].conv.in_channels == widths[node] + widths[skip]
    assert not any(net.cells[n].has_skip for n in (0, 1, 2, 3, 4, 9))
    assert net(torch.randn(*SHAPES[2])).shape == (1, 3, 32, 48)
    with pytest.raises(ValueError, match="multiple of 16"):
        net(torch.randn(1, 2, 32, 40))
    assert get_space("mbnas").network_builder() is build_network


def test_random_encodings_build_and_run_2d_and_3d():
    rng = random.Random(7)
    seen_blocks, skips = set(), 0
    for i in range(20):
        dims = 2 if i % 2 else 3
        enc = repair(MBNASEncoding.random(rng, num_nodes=rng.choice((6, 10)), max_downsamplings=4 if dims == 2 else 3,
                                          repaired=False))
        net = build_network(enc, dims, SHAPES[dims][1], 2, init_channels=4).eval()
        with torch.no_grad():
            out = net(torch.randn(*SHAPES[dims]))
        assert out.shape == (1, 2, *SHAPES[dims][2:]) and torch.isfinite(out).all()
        seen_blocks |= set(enc.blocks)
        skips += sum(s != NO_SKIP for s in enc.skips)
    assert seen_blocks == set(BLOCK_TYPES) and skips > 20


@pytest.mark.parametrize("seed", [None, 5, 8])
def test_forward_backward_every_parameter_has_a_gradient(seed):
    torch.manual_seed(0)
    if seed is None:  # the U-Net topology with every block type
        unet = unet_encoding(7, max_downsamplings=3)
        enc = MBNASEncoding(unet.channels, BLOCK_TYPES + BLOCK_TYPES[:3], (3, 5, 7, 3, 5, 7, 3), unet.skips, 3)
    else:
        enc = MBNASEncoding.random(seed, num_nodes=6, max_downsamplings=3)
    net = build_network(enc, 3, 1, 2, init_channels=4, norm=("instance", {"affine": True}))
    x = torch.randn(2, *SHAPES[3][1:], requires_grad=True)
    net(x).square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_invalid_encodings_and_arguments_are_refused():
    bad = MBNASEncoding(("down",) * 3, ("vgg",) * 3, (3,) * 3, (NO_SKIP,) * 3)
    with pytest.raises(ValueError, match="cannot build a network"):
        MBNASNet(bad)
    with pytest.raises(ValueError, match="spatial_dims"):
        build_network(unet_encoding(), spatial_dims=1)
    with pytest.raises(ValueError, match="residual block"):
        build_network(unet_encoding(block="residual"), 2, norm=None)


def test_cost_and_figure(tmp_path):
    unet = unet_encoding()
    report = cost_report(unet, (128, 128), init_channels=64)
    net = build_network(unet, 2, 1, 2, init_channels=64)
    assert report["params"] == sum(p.numel() for p in net.parameters())
    # the U-Net's first VGG block alone: 128^2 x (1 x 64 + 64 x 64) x 9 MACs
    assert report["macs"] > 128 * 128 * (64 + 64 * 64) * 9 and report["mmacs"] == report["macs"] / 1e6
    small = cost_report(unet, (32, 32, 32), init_channels=4)
    assert 0 < small["macs"] < report["macs"] and small["roi_size"] == [32, 32, 32]
    wide = cost_report(unet.with_value("kernel.0", 7), (32, 32, 32), init_channels=4)
    assert wide["params"] > small["params"] and wide["macs"] > small["macs"]
    path = unet.plot(tmp_path / "figs" / "unet.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    other = MBNASEncoding.random(3).draw(tmp_path / "random.png", title="random")
    assert other.stat().st_size > 1000 and not list(tmp_path.glob("**/*.tmp*"))
