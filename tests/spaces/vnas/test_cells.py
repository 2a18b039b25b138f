import pytest
import torch

from vnas_monai.networks.blocks import MixedOp
from vnas_monai.spaces.vnas import PVP, DecoderCell, EncoderCell, Stem
from vnas_monai.spaces.vnas.encoding import OP_NAMES


def test_stem_halves_every_axis():
    assert Stem(2, 4, "relu", "batch")(torch.randn(1, 2, 16, 12, 8)).shape == (1, 4, 8, 6, 4)


@pytest.mark.parametrize("op", OP_NAMES)
@pytest.mark.parametrize("stride, in_ch", [(1, 8), (2, 8), (1, 16)])
def test_encoder_cell_shapes(op, stride, in_ch):
    cell = EncoderCell(in_ch, 4, stride, [op], "relu", "batch")
    y = cell(torch.randn(2, in_ch, 8, 6, 4))
    assert y.shape == (2, 16, 8 // stride, 6 // stride, 4 // stride)


@pytest.mark.parametrize("op", OP_NAMES)
def test_decoder_cell_shapes(op):
    cell = DecoderCell(6, [op], "relu", "batch", num_layers=2, growth=3, bn_size=2)
    assert cell.out_channels == 12
    assert cell(torch.randn(1, 6, 8, 6, 4)).shape == (1, 12, 8, 6, 4)


def test_pvp_clips_windows_to_small_maps():
    pvp = PVP(5, (2, 4, 64))
    assert pvp(torch.randn(1, 5, 8, 6, 3)).shape == (1, 3, 8, 6, 3)


@pytest.mark.parametrize("sizes,shape", [((8, 16, 32, 64), (2, 5, 40, 24, 3)), ((2, 6, 4, 64), (1, 5, 13, 12, 2))])
def test_pvp_pyramid_equals_direct_pools(sizes, shape):
    # each window pools the last pool's output where it is a multiple of it: the same values as pooling the input
    torch.manual_seed(0)
    pvp, x = PVP(5, sizes), torch.randn(shape)
    h, w, d = shape[2:]
    direct = []
    for size, proj in zip(sizes, pvp.proj):
        k = (min(size, h), min(size, w), 1)
        y = proj(torch.nn.functional.max_pool3d(x, k, k))
        direct.append(torch.nn.functional.interpolate(y, size=[h, w, d], mode="trilinear", align_corners=False))
    for grad in (False, True):
        with torch.set_grad_enabled(grad):
            torch.testing.assert_close(pvp(x), torch.cat(direct, 1).detach(), rtol=0, atol=1e-6)


def test_mixed_op_weights_and_sampling():
    torch.manual_seed(0)
    ops = {n: torch.nn.Conv3d(2, 3, 1) for n in OP_NAMES}
    mixed = MixedOp(ops)
    x = torch.randn(1, 2, 4, 4, 2)
    w = torch.tensor([0.2, 0.3, 0.5])
    expected = sum(wi * op(x) for wi, op in zip(w, ops.values()))
    torch.testing.assert_close(mixed(x, w), expected)
    torch.testing.assert_close(mixed(x, w, index=1), 0.3 * ops["3d"](x))
    with pytest.raises(ValueError, match="needs mixing weights"):
        mixed(x)


def test_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    a = EncoderCell(8, 2, 1, OP_NAMES, "relu", "batch")
    b = EncoderCell(8, 2, 1, OP_NAMES, "relu", "batch", checkpointing=True)
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 8, 6, 4, 4, requires_grad=True)
    w = torch.softmax(torch.randn(3), 0)
    a(x, w).sum().backward()
    ga = [p.grad.clone() for p in a.parameters()]
    x.grad = None
    b(x, w).sum().backward()
    for g1, p in zip(ga, b.parameters()):
        torch.testing.assert_close(p.grad, g1, rtol=1e-4, atol=1e-5)


def test_full_resolution_refine_starts_as_identity_and_learns():
    from vnas_monai.spaces.vnas import FullResolutionRefine

    torch.manual_seed(0)
    block = FullResolutionRefine(2, 3, 4, "relu", "batch")
    block.reset_out()
    image, logits = torch.randn(2, 2, 6, 10, 4), torch.randn(2, 3, 6, 10, 4, requires_grad=True)
    out = block(image, logits)
    assert out.shape == (2, 3, 6, 10, 4) and torch.equal(out, logits)
    out.pow(2).sum().backward()
    # the zeroed correction is the one layer with a gradient at the start; after a step every layer learns
    assert block.out.weight.grad.abs().sum() > 0
    with torch.no_grad():
        block.out.weight.add_(0.1)
    block.zero_grad()
    block(image, logits.detach()).pow(2).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in block.parameters())
