"""The search-space protocol and registry, with V-NAS as the registered space."""

from __future__ import annotations

import json

import pytest
import torch

from vnas_monai.spaces import DifferentiableSpace, Encoding, SearchSpace, get_space, register_space, space_names
from vnas_monai.spaces.vnas.encoding import Architecture

SMALL = dict(init_filters=4, dense_layers=2, dense_growth=2)


def test_vnas_encoding_follows_the_protocol():
    arch = Architecture.preset("nih")
    assert isinstance(arch, Encoding) and arch.space == "vnas"
    rows = arch.rows()
    assert [len(rows["encoder"]), len(rows["decoder"])] == [16, 5]
    assert arch.options()["encoder"] == ["2d", "3d", "p3d"] and set(rows["encoder"]) <= {"2d", "3d", "p3d"}
    # the hash is of the choices alone: JSON round trip and probabilities do not change it
    probs = {"encoder": [[0.2, 0.5, 0.3]] * 16, "decoder": [[0.6, 0.2, 0.2]] * 5}
    same = Architecture(arch.encoder, arch.decoder, probs, {"note": 1})
    assert Architecture.from_json(arch.to_json()).digest() == same.digest() == arch.digest()
    assert len(arch.digest()) == 16 and Architecture.uniform("3d").digest() != arch.digest()
    # neighbours: one cell changed, 21 cells x 2 other candidates, all distinct
    nbrs = arch.neighbours()
    assert len(nbrs) == 42 and len({n.digest() for n in nbrs}) == 42
    assert all(sum(a != b for a, b in zip(n.codes, arch.codes)) == 1 for n in nbrs)


def test_registry_builds_the_vnas_space():
    space = get_space("vnas")
    assert "vnas" in space_names()
    arch = space.from_dict(json.loads(Architecture.preset("msd_lung").to_json()))
    assert arch == Architecture.preset("msd_lung")
    supernet = space.supernet_class()(out_channels=3, **SMALL)
    assert isinstance(supernet, DifferentiableSpace)
    assert isinstance(supernet.derive(), Encoding)
    arch_ids = {id(p) for p in supernet.arch_parameters()}
    assert not arch_ids & {id(p) for p in supernet.weight_parameters()}
    assert {"alpha", "beta"} <= set(supernet.state_dict())
    net = space.network_builder()(arch, out_channels=3, **SMALL)
    own = net.state_dict()
    net.load_state_dict({k: v for k, v in supernet.state_dict().items() if k in own} | {"arch_code": own["arch_code"]})
    assert net(torch.randn(1, 1, 32, 32, 64)).shape == (1, 3, 32, 32, 64)


def test_registry_errors_are_named():
    with pytest.raises(KeyError, match="unknown search space 'nope'; registered: .*vnas"):
        get_space("nope")
    with pytest.raises(ValueError, match="already registered"):
        register_space(SearchSpace("vnas", "a:b", "c:d"))
    with pytest.raises(ValueError, match="'module:attribute'"):
        register_space(SearchSpace("bad", "no_colon", "c:d"))
    with pytest.raises(ValueError, match="has no supernet"):
        SearchSpace("discrete_only", "a:b", "c:d").supernet_class()
    with pytest.raises(ValueError, match="'module:attribute'"):
        register_space(SearchSpace("bad", "a:b", "c:d", bundle="no_colon"))
    with pytest.raises(ValueError, match="'no_bundle' declares no bundle network"):
        SearchSpace("no_bundle", "a:b", "c:d").bundle_network()
    with pytest.raises(ValueError, match="is a function, not a vnas_monai.spaces.BundleNetwork"):
        SearchSpace("wrong", "a:b", "c:d", bundle="vnas_monai.spaces.vnas.network:build_vnasnet").bundle_network()


def test_vnas_bundle_network_is_the_stages_network():
    """What a bundle needs of V-NAS (the export and the pipeline's stage configs share it)."""
    from monai.bundle import ConfigParser

    from vnas_monai.bundle.configs import network_def
    from vnas_monai.spaces.vnas import DIVISOR, VNASNet

    spec = get_space("vnas").bundle_network()
    assert spec.divisor == DIVISOR == 32 and spec.title == "V-NAS" and spec.references
    assert spec.network_def("@arch_file")["architecture"] == "@arch_file"
    assert network_def() == spec.network_def("@architecture")
    parser = ConfigParser({"in_channels": 1, "num_classes": 3, "init_filters": 4, "architecture": "3d",
                           "network_def": spec.network_def("@architecture")})
    net = parser.get_parsed_content("network_def")
    assert isinstance(net, VNASNet) and net.architecture == Architecture.uniform("3d")
    assert net.state_dict()["head.up.bias"].shape == (3,)
