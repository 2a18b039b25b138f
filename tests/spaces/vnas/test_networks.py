import random

import pytest
import torch

from vnas_monai.networks.cost import format_cost
from vnas_monai.spaces.vnas import VNASNet, VNASSupernet
from vnas_monai.spaces.vnas.cost import cost_report
from vnas_monai.spaces.vnas.encoding import Architecture

SMALL = dict(init_filters=4, dense_layers=2, dense_growth=2)
SHAPE = (2, 1, 32, 32, 64)  # the smallest valid patch, non-cubic


@pytest.fixture(scope="module")
def supernet():
    torch.manual_seed(0)
    return VNASSupernet(out_channels=3, **SMALL)


def _grads_everywhere(net, params):
    missing = [n for n, p in params if p.requires_grad and (p.grad is None or not torch.isfinite(p.grad).all())]
    assert not missing, f"no gradient reached {missing[:5]}"
    assert any(p.grad.abs().sum() > 0 for _, p in params)


def test_supernet_forward_backward_every_parameter(supernet):
    supernet.train()
    supernet.zero_grad()
    y = supernet(torch.randn(SHAPE))
    assert y.shape == (2, 3, *SHAPE[2:])
    y.square().mean().backward()
    _grads_everywhere(supernet, list(supernet.named_parameters()))
    assert supernet.alpha.grad.abs().sum() > 0 and supernet.beta.grad.abs().sum() > 0


def test_arch_and_weight_parameters_are_disjoint(supernet):
    alpha, beta = supernet.arch_parameters()
    assert alpha.shape == (16, 3) and beta.shape == (5, 3)
    assert "alpha" in supernet.state_dict() and "beta" in supernet.state_dict()
    arch_ids = {id(alpha), id(beta)}
    weights = supernet.weight_parameters()
    assert not arch_ids & {id(p) for p in weights}
    assert len(weights) + 2 == len(list(supernet.parameters()))


def test_derive_is_argmax_with_probabilities(supernet):
    with torch.no_grad():
        supernet.alpha.normal_()
        supernet.beta.normal_()
    arch = supernet.derive()
    assert arch.encoder == supernet.alpha.argmax(-1).tolist()
    assert arch.decoder == supernet.beta.argmax(-1).tolist()
    torch.testing.assert_close(torch.tensor(arch.probabilities["encoder"]), torch.softmax(supernet.alpha.detach(), -1))


@pytest.mark.parametrize("seed", [0, 1])
def test_one_hot_supernet_equals_discrete_network(supernet, seed):
    rng = random.Random(seed)
    arch = Architecture([rng.randrange(3) for _ in range(16)], [rng.randrange(3) for _ in range(5)])
    supernet.set_architecture(arch)
    net = VNASNet.from_supernet(supernet)
    assert net.architecture == arch
    supernet.eval()
    net.eval()
    x = torch.randn(1, 1, 32, 32, 64)
    with torch.no_grad():
        a, b = supernet(x), net(x)
    assert ((a - b).abs().max() / b.abs().max()).item() < 1e-4


def test_discrete_state_dict_keys_are_a_subset_of_the_supernet(supernet):
    net = VNASNet(architecture="msd_lung", out_channels=3, **SMALL)
    extra = set(net.state_dict()) - set(supernet.state_dict())
    assert extra == {"arch_code"}


@pytest.mark.parametrize("arch", ["nih", "msd_lung", "p3d"])
def test_vnasnet_forward_backward_every_parameter(arch):
    net = VNASNet(in_channels=2, out_channels=2, architecture=arch, **SMALL)
    y = net(torch.randn(1, 2, 64, 32, 32))
    assert y.shape == (1, 2, 64, 32, 32)
    y.mean().backward()
    _grads_everywhere(net, list(net.named_parameters()))


def test_mix_baseline_keeps_architecture_frozen():
    mix = VNASSupernet(mix=True, **SMALL)
    assert not any(p.requires_grad for p in mix.arch_parameters())
    mix(torch.randn(2, 1, 32, 32, 32)).mean().backward()
    assert mix.alpha.grad is None
    torch.testing.assert_close(mix.arch_probabilities()["encoder"], torch.full((16, 3), 1 / 3))


def test_sampled_mode_runs_one_candidate_and_reaches_alpha():
    torch.manual_seed(0)
    net = VNASSupernet(search_mode="sampled", **SMALL)
    net(torch.randn(2, 1, 32, 32, 32)).mean().backward()
    assert net.alpha.grad.abs().sum() > 0 and net.beta.grad.abs().sum() > 0


@pytest.mark.parametrize("shape", [(1, 1, 48, 32, 32), (1, 1, 32, 32, 16), (1, 1, 32, 32)])
def test_bad_input_sizes_say_what_they_need(shape):
    net = VNASNet(architecture="nih", **SMALL)
    with pytest.raises(ValueError, match="divisible by 32|5D input"):
        net(torch.randn(shape))


def test_refuses_weights_of_another_architecture(tmp_path):
    nih = VNASNet(architecture="nih", **SMALL)
    lung = VNASNet(architecture="msd_lung", **SMALL)
    with pytest.raises(ValueError, match="belong to architecture"):
        lung.load_state_dict(nih.state_dict(), strict=False)
    sd = {k: v for k, v in nih.state_dict().items() if k != "arch_code"}
    with pytest.raises(ValueError, match="lacks"):
        lung.load_state_dict(sd, strict=False)
    torch.save(nih.state_dict(), tmp_path / "model.pt")
    again = VNASNet(architecture="nih", **SMALL)
    again.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True))


def test_torchscript_export_matches_eager():
    torch.manual_seed(0)
    net = VNASNet(architecture="msd_pancreas", out_channels=3, **SMALL).eval()
    scripted = torch.jit.script(net)
    x = torch.randn(1, 1, 32, 64, 32)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), net(x))


def test_bad_network_arguments():
    with pytest.raises(ValueError, match="spatial_dims must be 3"):
        VNASNet(spatial_dims=2)
    with pytest.raises(ValueError, match="out_channels"):
        VNASNet(out_channels=0)
    with pytest.raises(ValueError, match="upsample_mode"):
        VNASNet(upsample_mode="cubic")
    with pytest.raises(ValueError, match="preset"):
        VNASNet(architecture="liver")


def test_cost_orders_2d_p3d_3d_parameters():
    costs = {op: cost_report(op, roi_size=(64, 64, 64), init_filters=16) for op in ("2d", "p3d", "3d")}
    assert costs["2d"]["params"] < costs["p3d"]["params"] < costs["3d"]["params"]
    assert costs["2d"]["macs"] < costs["3d"]["macs"] and costs["p3d"]["macs"] < costs["3d"]["macs"]
    net = VNASNet(architecture="3d", init_filters=16)
    assert costs["3d"]["params"] == sum(p.numel() for p in net.parameters())
    supernet = cost_report(None, roi_size=(64, 64, 64), init_filters=16)
    assert supernet["params"] > costs["3d"]["params"] and "GMACs" in format_cost(supernet)


def _check_refined(net):
    """A net with a full-resolution stage, its correction made non-zero: shape, every parameter learns, TorchScript."""
    x = torch.randn(2, 1, 32, 64, 32)
    with torch.no_grad():
        net.refine.out.weight.add_(0.05)
    net.train()
    y = net(x)
    assert y.shape == (2, 3, 32, 64, 32)
    y.mean().backward()
    _grads_everywhere(net, list(net.named_parameters()))
    net.eval()
    torch.testing.assert_close(torch.jit.script(net)(x), net(x))


def test_full_resolution_stage_moves_by_state_dict_and_scripts():
    """The optional full-resolution stage: same module names in supernet and discrete net, starts as the paper's head,
    every parameter gets a gradient once the correction is non-zero, and TorchScript compiles it."""
    torch.manual_seed(0)
    sup = VNASSupernet(out_channels=3, full_resolution_channels=4, **SMALL)
    net = VNASNet.from_supernet(sup, Architecture.resolve("nih"))
    assert net.refine is not None and "refine.out.weight" in net.state_dict()
    plain = VNASNet(out_channels=3, architecture="nih", **SMALL)
    assert plain.refine is None and not any(k.startswith("refine.") for k in plain.state_dict())
    _check_refined(net)
    with pytest.raises(ValueError, match="full_resolution_channels"):
        VNASNet(architecture="nih", full_resolution_channels=-1, **SMALL)


def test_full_resolution_stage_with_the_decoder_features():
    """``full_resolution_features``: the stage also sees the decoder's last features (lifted x2); forward, backward,
    every parameter learns, the weights move from the supernet, TorchScript compiles it; it needs the stage."""
    torch.manual_seed(0)
    sup = VNASSupernet(out_channels=3, full_resolution_channels=4, full_resolution_features=True, **SMALL)
    net = VNASNet.from_supernet(sup, Architecture.resolve("msd_lung"))
    assert torch.equal(net.state_dict()["refine.lift.weight"], sup.state_dict()["refine.lift.weight"])
    _check_refined(net)
    with pytest.raises(ValueError, match="full_resolution_features needs"):
        VNASNet(architecture="nih", full_resolution_features=True, **SMALL)


@pytest.mark.parametrize("refine", [0, 4])
def test_deep_supervision_outputs_in_training_only(refine):
    """``deep_supervision``: a training forward stacks the final logits and the auxiliary outputs on the input grid
    (DynUNet's contract), every parameter learns through them, evaluation returns the logits alone and equals the
    network without heads (same weights); the heads are fresh modules beside the supernet's weights."""
    torch.manual_seed(0)
    sup = VNASSupernet(out_channels=3, full_resolution_channels=refine, **SMALL)
    k = 3 if refine else 2
    net = VNASNet.from_supernet(sup, Architecture.resolve("nih"), deep_supervision=k)
    assert len(net.ds_heads) == (2 if refine else 2) and net.ds_pre_refine == bool(refine)
    if refine:
        net.refine.out.weight.data.normal_(0, 0.1)  # else the refine stage's input gets no gradient at all
    x = torch.randn(1, 1, 32, 64, 32)
    net.train()
    y = net(x)
    assert y.shape == (1, 1 + k, 3, 32, 64, 32)
    (y * torch.randn_like(y)).mean().backward()
    _grads_everywhere(net, list(net.named_parameters()))
    net.eval()
    plain = VNASNet.from_supernet(sup, Architecture.resolve("nih"))
    plain.load_state_dict({k2: v for k2, v in net.state_dict().items() if not k2.startswith("ds_heads.")})
    plain.eval()
    with torch.no_grad():
        torch.testing.assert_close(net(x), plain(x))
        torch.testing.assert_close(torch.jit.script(net)(x), net(x))
    with pytest.raises(ValueError, match="deep_supervision must be"):
        VNASNet(architecture="nih", deep_supervision=k + 1, full_resolution_channels=refine, **SMALL)
