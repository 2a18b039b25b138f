"""The NAS-3D-U-Net supernet and discrete network (Wang, BraTS 2019, Fig. 3 to 5): shapes, one-hot equivalence,
gradients, weight transfer by state_dict, the registry and the generic search trainer."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from vnas_monai.spaces import DifferentiableSpace, Encoding, get_space
from vnas_monai.spaces.nas3dunet import (
    ARCH_PARAM_NAMES,
    Cell,
    Genotype,
    NAS3DUNet,
    NAS3DUNetSupernet,
    build_nas3dunet,
    divisor,
)

SMALL = dict(in_channels=2, out_channels=3, depth=2)  # 2 modalities, 3 regions; sizes multiples of 8
SHAPE = (1, 2, 16, 24, 16)


def _supernet(seed: int = 0, **kwargs) -> NAS3DUNetSupernet:
    torch.manual_seed(seed)
    return NAS3DUNetSupernet(**{**SMALL, **kwargs})


def test_backbone_shapes_and_widths():
    net = _supernet(init_filters=4)
    assert net(torch.randn(SHAPE)).shape == (1, 3, 16, 24, 16)
    assert net.p0.conv.out_channels == net.p1.conv.out_channels == 12  # m * n kernels, m = init_filters
    assert [c.out_channels for c in net.down_cells] == [3 * 8, 3 * 16]  # node width c0 * theta^i
    assert [c.out_channels for c in net.up_cells] == [3 * 8, 3 * 4, 3 * 4]  # back to the skips' widths
    assert [c.kind for c in net.up_cells] == ["up"] * 3 and len(net.down_cells) == 2
    assert net.head.conv.kernel_size == (1, 1, 1) and net.head.conv.out_channels == 3  # logits, no sigmoid
    assert divisor(2) == 8 and NAS3DUNetSupernet(in_channels=4).p0.conv.out_channels == 12  # default c0 = m
    with pytest.raises(ValueError, match=r"multiples of 8, got \(1, 2, 16, 20, 16\)"):
        net(torch.randn(1, 2, 16, 20, 16))


def test_cell_wiring_follows_fig5():
    cell = Cell("up", 6, 12, 4, {"node0_x0": ["u_conv"], "node0_x1": ["u_se_conv"], "node1_node0": ["conv"],
                                 "node2_x1": ["u_dep_conv"], "node2_node1": ["identity"]})
    assert cell.pre0.conv.stride == (2, 2, 2) and cell.pre1.conv.stride == (1, 1, 1)
    assert cell.pre0.conv.kernel_size == cell.pre1.conv.kernel_size == (1, 1, 1)
    assert [hm.kind for hm in cell.hms.values()] == ["up", "up", "normal", "up", "normal"]
    y = cell(torch.randn(1, 6, 8, 8, 4), torch.randn(1, 12, 4, 4, 2))
    assert y.shape == (1, 12, 8, 8, 4)  # concat of 3 nodes of 4 channels, at x0's resolution
    with pytest.raises(ValueError, match="node1 would have no hybrid module"):
        Cell("down", 4, 4, 4, {"node0_x0": ["d_conv"], "node2_x0": ["d_conv"]})
    with pytest.raises(ValueError, match=r"unknown cell edge\(s\) \['node1_node1'\]"):
        Cell("down", 4, 4, 4, {"node1_node1": ["conv"]})
    with pytest.raises(ValueError, match="is not a NHM op"):
        Cell("down", 4, 4, 4, {"node0_x0": ["d_conv"], "node0_x1": ["d_conv"], "node1_node0": ["d_conv"]})


def test_supernet_follows_the_protocol():
    net = _supernet()
    assert isinstance(net, DifferentiableSpace) and isinstance(net.derive(), Encoding)
    shapes = {n: tuple(getattr(net, n).shape) for n in ARCH_PARAM_NAMES}
    assert shapes == {"alpha_down": (6, 6), "alpha_down_normal": (3, 5), "alpha_up": (6, 4),
                      "alpha_up_normal": (3, 5)}
    assert set(ARCH_PARAM_NAMES) <= set(net.state_dict()) and all((p == 0).all() for p in net.arch_parameters())
    arch, weights = {id(p) for p in net.arch_parameters()}, {id(p) for p in net.weight_parameters()}
    assert not arch & weights and arch | weights == {id(p) for p in net.parameters()}
    probs = net.arch_probabilities()
    assert {k: tuple(v.shape) for k, v in probs.items()} == {k[len("alpha_"):]: s for k, s in shapes.items()}
    assert all(torch.allclose(v.sum(-1), torch.ones(len(v))) for v in probs.values())
    assert not any(p.requires_grad for p in _supernet(mix=True).arch_parameters())


def test_derive_takes_argmax_ops_and_two_best_hms():
    net = _supernet()
    with torch.no_grad():
        net.alpha_down[:, 1] = 2.0  # every DHM: d_dil_conv (p = 0.6)
        net.alpha_down[5, 4] = 4.0  # node2 <- x1: max_pool (p = 0.92)
        net.alpha_down_normal[2, 4] = 3.0  # node2 <- node1: identity (p = 0.83)
        net.alpha_up_normal[0, 2] = 3.0  # UC node1 <- node0: dep_conv (p = 0.83)
    geno = net.derive()
    assert geno.down[0] == {"x0": "d_dil_conv", "x1": "d_dil_conv"}
    assert geno.down[1] == {"x0": "d_dil_conv", "x1": "d_dil_conv"}  # 0.6 each beats conv's 0.2 on node0
    assert geno.down[2] == {"x1": "max_pool", "node1": "identity"}
    assert geno.up[1] == {"x0": "u_conv", "node0": "dep_conv"}  # the tie of the UHMs goes to the earlier source
    assert geno.probabilities["down"][5][4] == pytest.approx(net.arch_probabilities()["down"][5, 4].item())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_hot_supernet_equals_the_discrete_network(seed):
    supernet = _supernet(seed)
    geno = Genotype.random(seed)
    supernet.set_architecture(geno)
    net = NAS3DUNet.from_supernet(supernet, geno)
    own = set(net.state_dict()) - {"arch_code"}
    assert own < set(supernet.state_dict())  # the discrete network's module names are the supernet's
    assert not any(k.startswith("alpha") for k in own)
    x = torch.randn(SHAPE)
    with torch.no_grad():
        torch.testing.assert_close(net.eval()(x), supernet.eval()(x))
    supernet.set_architecture(None)  # back to the whole supernet
    with torch.no_grad():
        assert not torch.allclose(supernet(x), net(x))


def _lift_se_biases(net):
    """A squeeze-excitation's hidden ReLU (1 or 2 units at these widths) can be dead for a single sample at random
    init, which zeroes its first layer's gradient legitimately; positive biases keep it alive, so that a zero
    gradient can only mean a weight the forward pass does not use."""
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("se.fc.0.bias"):
                p.fill_(1.0)


def test_gradients_reach_every_alpha_and_every_weight():
    net = _supernet(init_filters=2)
    _lift_se_biases(net)
    with torch.no_grad():
        for p in net.arch_parameters():
            p.normal_(0, 0.1)  # away from the uniform start, where softmax gradients are symmetric
    out = net(torch.randn(SHAPE))
    (out * torch.randn_like(out)).sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"no gradient reaches {name}"
    discrete = NAS3DUNet(genotype=Genotype.random(3), init_filters=2, **SMALL)
    _lift_se_biases(discrete)
    out = discrete(torch.randn(SHAPE))
    (out * torch.randn_like(out)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in discrete.parameters())


def test_discrete_network_refuses_other_weights(tmp_path):
    a, b = Genotype.random(0), Genotype.random(1)
    net = NAS3DUNet(genotype=a, **SMALL)
    assert Genotype.from_codes(net.arch_code.tolist()) == a
    with pytest.raises(ValueError, match="these weights belong to Genotype"):
        net.load_state_dict(NAS3DUNet(genotype=b, **SMALL).state_dict(), strict=False)
    partial = {k: v for k, v in net.state_dict().items() if not k.startswith("up_cells")}
    with pytest.raises(ValueError, match="the state dict lacks"):
        net.load_state_dict(partial, strict=False)
    path = a.save(tmp_path / "genotype.json")
    again = build_nas3dunet(str(path), **SMALL)  # a bundle passes the path of the genotype's JSON
    again.load_state_dict(net.state_dict())
    with pytest.raises(ValueError, match="needs a genotype"):
        NAS3DUNet(**SMALL)


def test_registry_builds_the_space():
    space = get_space("nas3dunet")
    geno = Genotype.random(5)
    assert space.from_dict(json.loads(geno.to_json())) == geno
    supernet = space.supernet_class()(**SMALL)
    assert isinstance(supernet, NAS3DUNetSupernet)
    assert isinstance(space.network_builder()(geno, **SMALL), NAS3DUNet)


def test_the_generic_search_trainer_runs_the_space(tmp_path):
    """Table 2's alternation through the engine's bilevel trainer and architecture logger, unchanged."""
    from monai.data import DataLoader

    from vnas_monai.engine import ArchitectureLogger, VNASSearchTrainer

    def loader(seed):
        g = torch.Generator().manual_seed(seed)
        return DataLoader([{"image": torch.randn(2, 8, 16, 8, generator=g),
                            "label": (torch.rand(3, 8, 16, 8, generator=g) > 0.5).float()} for _ in range(2)],
                          batch_size=1)

    torch.manual_seed(0)
    net = NAS3DUNetSupernet(in_channels=2, out_channels=3, depth=1)
    trainer = VNASSearchTrainer(
        device="cpu", max_epochs=2, train_data_loader=loader(0), network=net,
        optimizer=torch.optim.SGD(net.weight_parameters(), lr=0.01), arch_data_loader=loader(1),
        arch_optimizer=torch.optim.Adam(net.arch_parameters(), lr=0.1),
        loss_function=F.binary_cross_entropy_with_logits, arch_warmup_epochs=0, precision="fp32",
    )
    logger = ArchitectureLogger(tmp_path, space="nas3dunet")
    logger.attach(trainer)
    trainer.run()
    assert not all((p == 0).all() for p in net.arch_parameters())  # the alphas moved
    saved = Genotype.load(tmp_path / "arch.json")
    assert saved == net.derive() and len(saved.meta["history"]) == 2
    assert set(saved.meta["margins"]) == {"down", "down_normal", "up", "up_normal"}
    assert (tmp_path / "arch_probabilities.png").stat().st_size > 0
