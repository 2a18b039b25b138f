"""The NAS-3D-U-Net genotype (Wang, BraTS 2019, §2.4 and Fig. 6): plain JSON in the paper's op names, round trip,
stable hash, discretisation, neighbours, clear errors and the Fig. 6 drawing."""

from __future__ import annotations

import json

import pytest

from vnas_monai.spaces import Encoding, choices_digest
from vnas_monai.spaces.aggregate import aggregate, load_encoding
from vnas_monai.spaces.nas3dunet import OP_TABLES, PARTS, Genotype

FIXED = {
    "space": "nas3dunet",
    "down": [{"x0": "d_dep_conv", "x1": "d_conv"}, {"x1": "d_dep_conv", "node0": "se_conv"},
             {"x1": "d_dil_conv", "node1": "identity"}],
    "up": [{"x0": "u_dil_conv", "x1": "u_conv"}, {"x1": "u_dil_conv", "node0": "identity"},
           {"x0": "u_dep_conv", "node0": "conv"}],
}


def _uniform_probabilities():
    return {part: [[1.0 / len(OP_TABLES[kind])] * len(OP_TABLES[kind]) for _ in rows]
            for part, (_, rows, kind) in PARTS.items()}


def test_json_round_trip_and_stable_hash(tmp_path):
    geno = Genotype.from_dict(FIXED)
    assert isinstance(geno, Encoding) and geno.space == "nas3dunet"
    assert json.loads(geno.to_json()) == FIXED  # plain JSON, the paper's op names, nothing else
    assert Genotype.from_json(geno.to_json()) == geno
    # the hash is of the kept HMs alone, the same on every run and machine
    assert geno.digest() == "27a21d2ec5cee2f4"
    assert geno.digest() == choices_digest("nas3dunet", {"down": FIXED["down"], "up": FIXED["up"]})
    shuffled = {**FIXED, "down": [dict(reversed(list(n.items()))) for n in FIXED["down"]]}
    with_probs = Genotype(FIXED["down"], FIXED["up"], _uniform_probabilities(), {"epoch": 3})
    assert Genotype.from_dict(shuffled).digest() == with_probs.digest() == geno.digest()
    assert Genotype.random(1).digest() != geno.digest()
    path = with_probs.save(tmp_path / "arch.json")
    back = load_encoding(path)  # through the registry, by the file's "space" key
    assert back == geno and back.meta == {"epoch": 3} and back.probabilities == with_probs.probabilities
    assert Genotype.from_codes(geno.codes) == geno and len(geno.codes) == 18 and geno.codes.count(0) == 6


def test_protocol_views():
    geno = Genotype.from_dict(FIXED)
    layout, rows, options = geno.layout(), geno.rows(), geno.options()
    assert {k: len(v) for k, v in layout.parts.items()} == {"down": 6, "down_normal": 3, "up": 6, "up_normal": 3}
    assert layout.separators == [6, 9, 15] and layout.options[0] == "conv"
    assert rows["down"] == ["d_dep_conv", "d_conv", "none", "d_dep_conv", "none", "d_dil_conv"]
    assert rows["up_normal"] == ["identity", "conv", "none"]
    assert options["down"] == list(OP_TABLES["down"]) and options["up_normal"] == list(OP_TABLES["normal"])
    assert geno.summary().startswith("DC [node0 = d_dep_conv(x0) + d_conv(x1); node1 = d_dep_conv(x1) + se_conv")
    assert geno.margins() is None
    uniform = Genotype(FIXED["down"], FIXED["up"], _uniform_probabilities())
    assert uniform.decision()["median_margin"] == 0.0 and not uniform.decision()["decided"]


def test_from_probabilities_keeps_argmax_ops_and_two_best_hms():
    probs = _uniform_probabilities()
    probs["down"][4] = [0.0, 0.0, 0.0, 0.0, 0.0, 1.0]  # DC node2 <- x0: avg_pool, certain
    probs["down_normal"][2] = [0.1, 0.1, 0.1, 0.6, 0.1]  # DC node2 <- node1: se_conv
    probs["up"][3] = [0.1, 0.1, 0.7, 0.1]  # UC node1 <- x1: u_dep_conv
    geno = Genotype.from_probabilities(probs, meta={"note": 1})
    assert geno.down[2] == {"x0": "avg_pool", "node1": "se_conv"}
    assert geno.up[1] == {"x0": "u_conv", "x1": "u_dep_conv"}  # 0.7, then the uniform UHM's 0.25 over NHM's 0.2
    assert geno.up[0] == {"x0": "u_conv", "x1": "u_conv"} and geno.meta == {"note": 1}
    assert geno.probabilities["down"][4][5] == 1.0


def test_aggregation_of_two_folds():
    a = _uniform_probabilities()
    b = _uniform_probabilities()
    a["down"][0] = [0.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    b["down"][0] = [0.0, 0.4, 0.6, 0.0, 0.0, 0.0]
    final = aggregate([Genotype.from_probabilities(a), Genotype.from_probabilities(b)])
    assert final.down[0]["x0"] == "d_dil_conv" and final.probabilities["down"][0][1] == pytest.approx(0.7)


def test_neighbours_change_one_variable():
    geno = Genotype.from_dict(FIXED)
    nbrs = geno.neighbours()
    # ops: 4 DHM x 5 + 2 NHM x 4 (DC), 4 UHM x 3 + 2 NHM x 4 (UC); sources: 1 + 2 + 2 per node 1 / node 2 per cell
    assert len(nbrs) == (4 * 5 + 2 * 4) + (4 * 3 + 2 * 4) + 2 * (2 + 4)
    assert len({n.digest() for n in nbrs}) == len(nbrs) and geno.digest() not in {n.digest() for n in nbrs}
    for n in nbrs:
        changed = [(c, i) for c in ("down", "up") for i in range(3) if n.cells[c][i] != geno.cells[c][i]]
        assert len(changed) == 1
        c, i = changed[0]
        old, new = geno.cells[c][i], n.cells[c][i]
        assert set(old) == set(new) and sum(old[s] != new[s] for s in old) == 1 or len(set(old) & set(new)) == 1
    moved = Genotype.from_dict({**FIXED, "down": [FIXED["down"][0], {"x0": "d_dep_conv", "node0": "se_conv"},
                                                  FIXED["down"][2]]})
    assert moved in nbrs  # node1's x1 HM moved to x0, its op kept (same table)
    carried = Genotype.from_dict({**FIXED, "down": [FIXED["down"][0], FIXED["down"][1],
                                                    {"x1": "d_dil_conv", "x0": "max_pool"}]})
    assert carried in nbrs  # identity moved to x0 becomes max_pool (the fifth column of both tables)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"down": FIXED["down"][:2]}, r"genotype\['down'\] must be a list of 3 nodes"),
        ({"up": [{"x0": "u_conv"}, *FIXED["up"][1:]]}, r"genotype\['up'\]\[0\] must map exactly 2 inputs to ops"),
        ({"down": [{"x0": "conv", "x1": "d_conv"}, *FIXED["down"][1:]]},
         r"genotype\['down'\]\[0\]\['x0'\] = 'conv' is not a DHM op; known DHM ops: d_conv, d_dil_conv"),
        ({"up": [FIXED["up"][0], {"x1": "u_conv", "node0": "u_conv"}, FIXED["up"][2]]},
         r"genotype\['up'\]\[1\]\['node0'\] = 'u_conv' is not a NHM op; known NHM ops: conv, .*identity"),
        ({"down": [FIXED["down"][0], {"x1": "d_conv", "node1": "conv"}, FIXED["down"][2]]},
         r"genotype\['down'\]\[1\] has input 'node1'; node1 may take x0, x1, node0"),
        ({"space": "vnas"}, r"genotype: 'space' is 'vnas', not 'nas3dunet'"),
        ({"probabilities": {"down": [[1.0] * 6] * 6}}, r"genotype\['probabilities'\] must have exactly the tables"),
    ],
)
def test_bad_genotypes_name_the_key(change, message):
    with pytest.raises(ValueError, match=message) as info:
        Genotype.from_dict({**FIXED, **change})
    assert "\n" not in str(info.value) and len(str(info.value)) < 400  # one screen, one line


def test_bad_files_name_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json is not valid JSON"):
        Genotype.load(bad)
    bad.write_text(json.dumps({"space": "nas3dunet", "down": FIXED["down"]}))
    with pytest.raises(ValueError, match=r"bad.json: missing key\(s\) \['up'\]"):
        Genotype.load(bad)
    bad.write_text(json.dumps({**FIXED, "up": [{"x0": "u_conv", "x1": "avg_pool"}, *FIXED["up"][1:]]}))
    with pytest.raises(ValueError, match=r"bad.json\['up'\]\[0\]\['x1'\] = 'avg_pool' is not a UHM op"):
        Genotype.load(bad)
    with pytest.raises(ValueError, match=r"bad.json: genotype\['up'\]\[0\]\['x1'\] = 'avg_pool' is not a UHM op"):
        load_encoding(bad)  # through the registry
    with pytest.raises(FileNotFoundError):
        Genotype.load(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="code 7 of DC edge node0_x0"):
        Genotype.from_codes([7] + [0] * 17)


def test_cells_are_drawn_as_fig6(tmp_path):
    path = Genotype.from_dict(FIXED).plot(tmp_path / "cells.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
