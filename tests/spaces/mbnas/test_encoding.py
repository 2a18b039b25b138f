"""MB-NAS encodings (Bosma et al. 2022, §2.1): the U-Net in the space, the one validity rule, the neighbourhood, JSON
and digest, and the variable groups of the §2.4 comparisons."""

from __future__ import annotations

import dataclasses
import json
import random

import pytest

from vnas_monai.spaces import Encoding, VariableEncoding, get_space, neighbours_by_variable
from vnas_monai.spaces.mbnas import (
    BLOCK_TYPES,
    KERNEL_SIZES,
    NO_SKIP,
    MBNASEncoding,
    cell_variables,
    comparison_restrictions,
    kernel_variables,
    problems,
    repair,
    topology_variables,
    unet_encoding,
    variable_names,
)

#: the U-Net's digest: choices_digest of its four lists (a change of the digest rule breaks every archive)
UNET_DIGEST = "91278e5b681820dc"


def test_unet_lies_in_the_space_down_then_up_with_a_skip_at_every_level():
    unet = unet_encoding()
    assert problems(unet) == [] and repair(unet) is unet
    assert unet.levels() == [0, 1, 2, 3, 4, 3, 2, 1, 0, 0]
    assert unet.channels == ("same",) + ("down",) * 4 + ("up",) * 4 + ("same",)
    assert set(unet.blocks) == {"vgg"} and set(unet.kernels) == {3}
    # each up node takes its skip from the encoder node at its own level, the deepest first
    ups = [n for n, c in enumerate(unet.channels) if c == "up"]
    assert {n: unet.skips[n] for n in ups} == {5: 3, 6: 2, 7: 1, 8: 0}
    assert all(unet.levels()[unet.skips[n]] == unet.levels()[n] for n in ups)
    assert [s for n, s in enumerate(unet.skips) if n not in ups] == [NO_SKIP] * 6
    # other sizes: exactly a U-Net with 2 * depth + 1 nodes, same-blocks appended otherwise
    assert unet_encoding(7, max_downsamplings=3).levels() == [0, 1, 2, 3, 2, 1, 0]
    assert unet_encoding(10, depth=2).levels() == [0, 1, 2, 1, 0, 0, 0, 0, 0, 0]
    with pytest.raises(ValueError, match="depth 5"):
        unet_encoding(10, depth=5)


def test_protocol_registry_json_round_trip_and_digest(tmp_path):
    unet = unet_encoding()
    assert isinstance(unet, Encoding) and isinstance(unet, VariableEncoding)
    assert get_space("mbnas").encoding_class() is MBNASEncoding
    assert unet.digest() == UNET_DIGEST
    enc = MBNASEncoding.random(11, max_downsamplings=3)
    enc.meta["history"] = [1, 2]
    data = enc.to_dict()
    assert data["space"] == "mbnas" and data["num_nodes"] == 10 and data["max_downsamplings"] == 3
    back = get_space("mbnas").from_dict(json.loads(json.dumps(data)))
    assert back == enc and back.digest() == enc.digest() and back.meta == {"history": [1, 2]}
    assert back.max_downsamplings == 3 and back.to_dict() == data
    path = enc.save(tmp_path / "arch.json")
    assert MBNASEncoding.load(path) == enc and MBNASEncoding.resolve(path) == enc
    # the digest is of the choices alone: meta and max_downsamplings do not change it, any choice does
    assert dataclasses.replace(enc, meta={"x": 1}, max_downsamplings=4).digest() == enc.digest()
    digests = {MBNASEncoding.random(s).digest() for s in range(50)}
    assert len(digests) == 50
    with pytest.raises(ValueError, match="cannot build a network"):
        MBNASEncoding.from_dict({**data, "channels": ["up"] * 10})
    with pytest.raises(ValueError, match="not an option"):
        MBNASEncoding.from_dict({**data, "blocks": ["transformer"] * 10})
    with pytest.raises(ValueError, match="space 'vnas'"):
        MBNASEncoding.from_dict({**data, "space": "vnas"})
    with pytest.raises(ValueError, match="not valid JSON"):
        MBNASEncoding.from_json("{", "x.json")


def test_rows_options_layout_summary_and_probabilities():
    unet = unet_encoding()
    rows, options = unet.rows(), unet.options()
    assert set(rows) == set(options) == {"channels", "blocks", "kernels", "skips"}
    assert rows["skips"][8] == "node 0" and rows["kernels"][0] == "3" and options["skips"][0] == "none"
    assert all(r in options[part] for part, names in rows.items() for r in names)
    layout = unet.layout()
    assert layout.num_rows == 40 and len(layout.options) == len(options["skips"]) and layout.separators == [10, 20, 30]
    assert "N8 up vgg3 +N0" in unet.summary()
    assert unet.margins() is None and unet.decision() is None
    # the argmax of a table that puts every row on the U-Net's choice gives back the U-Net, with margins
    table = {part: [[0.9 if o == r else 0.1 / (len(options[part]) - 1) for o in options[part]] for r in rows[part]]
             for part in rows}
    derived = MBNASEncoding.from_probabilities(table)
    assert derived == unet and derived.probabilities is not None
    assert min(derived.margins()["blocks"]) == pytest.approx(0.9 - 0.1 / 3)


def _raw_with(enc, variable, option):
    """One variable of ``enc`` set to ``option``, nothing else touched (no rule)."""
    kind, node = variable.split(".")
    part = {"channels": "channels", "block": "blocks", "kernel": "kernels", "skip": "skips"}[kind]
    values = list(getattr(enc, part))
    values[int(node)] = option
    return dataclasses.replace(enc, **{part: tuple(values)})


def test_the_validity_rule_on_1000_random_encodings():
    rng = random.Random(2022)
    invalid = 0
    for i in range(1000):
        n, top = rng.choice((4, 7, 10)), rng.choice((1, 2, 3, 4))
        raw = MBNASEncoding.random(rng, num_nodes=n, max_downsamplings=top, repaired=False)
        fixed = repair(raw)
        levels = fixed.levels()
        assert problems(fixed) == [], (raw, fixed)
        # the rule spelled out: levels within [0, top], back to full resolution, skips earlier and level-matched
        assert all(0 <= lv <= top for lv in levels) and levels[-1] == 0
        assert all(s == NO_SKIP or (s <= node - 2 and levels[s] == levels[node]) for node, s in enumerate(fixed.skips))
        assert repair(fixed) is fixed  # idempotent
        assert fixed.blocks == raw.blocks and fixed.kernels == raw.kernels  # the rule never touches the cells
        if problems(raw):
            invalid += 1
            assert fixed != raw
        else:
            assert fixed is raw
    assert invalid > 900  # uniform random encodings are almost never valid: the rule is exercised


def test_repair_and_refusal_examples():
    unet = unet_encoding()
    # a shallower U-Net: the extra up-step at node 8 would leave full resolution, so it becomes "same"
    shallow = unet.with_value("channels.4", "same")
    assert shallow.channels[4] == "same" and shallow.channels[8] == "same"
    assert shallow.levels() == [0, 1, 2, 3, 3, 2, 1, 0, 0, 0] and problems(shallow) == []
    # one level deeper from the start: node 4 is clamped at max_downsamplings, and the skips move to their level
    deeper = unet.with_value("channels.0", "down")
    assert deeper.levels() == [1, 2, 3, 4, 4, 3, 2, 1, 0, 0]
    assert deeper.skips[5:9] == (2, 1, 0, NO_SKIP)
    # refused: the rule would undo the change
    assert unet.with_value("channels.9", "up") is None and unet.with_value("channels.9", "down") is None
    assert unet.with_value("skip.5", 2) is None  # node 2 is at level 2, node 5 at level 3
    assert unet.with_value("skip.8", NO_SKIP).skips[8] == NO_SKIP
    assert unet.with_value("block.3", "vgg") == unet  # the current option
    with pytest.raises(ValueError, match="not an option"):
        unet.with_value("skip.8", 7)  # node 7 is the preceding node
    with pytest.raises(ValueError, match="unknown variable"):
        unet.with_value("skip.1", NO_SKIP)
    with pytest.raises(ValueError, match="unknown variable"):
        unet.with_value("block.10", "vgg")


@pytest.mark.parametrize("which", ["unet", 0, 1, 2, 3])
def test_neighbours_are_exactly_the_valid_one_variable_changes(which):
    enc = unet_encoding() if which == "unet" else MBNASEncoding.random(which)
    # brute force: every option of every variable, set alone, then the rule; kept where the option survives
    expected = {}
    for name in variable_names(enc.num_nodes):
        kind, node = name.split(".")
        options = {"channels": ("down", "same", "up"), "block": BLOCK_TYPES, "kernel": KERNEL_SIZES,
                   "skip": range(NO_SKIP, int(node) - 1)}[kind]
        for option in options:
            fixed = repair(_raw_with(enc, name, option))
            if fixed.value_of(name) == option and fixed.digest() != enc.digest():
                expected.setdefault(fixed.digest(), fixed)
    got = {n.digest(): n for n in enc.neighbours()}
    assert len(got) == len(enc.neighbours()) and set(got) == set(expected)
    assert all(problems(n) == [] for n in got.values())
    # the cell variables never need the rule: exactly 3 other blocks and 2 other kernels per node
    cells = [n for n in got.values() if n.channels == enc.channels and n.skips == enc.skips]
    assert len(cells) == enc.num_nodes * (len(BLOCK_TYPES) - 1 + len(KERNEL_SIZES) - 1)
    grouped = neighbours_by_variable(enc)
    assert set(grouped) == set(variable_names(enc.num_nodes))
    assert {n.digest() for pairs in grouped.values() for _, n in pairs} == set(got)
    for name, pairs in grouped.items():
        assert all(n.value_of(name) == option for option, n in pairs)


def test_variable_groups_of_the_comparisons():
    names = variable_names(10)
    assert len(names) == 10 * 3 + 8 and names == list(unet_encoding().variables())
    topo, cells, kernels = topology_variables(), cell_variables(), kernel_variables()
    assert set(topo) | set(cells) == set(names) and not set(topo) & set(cells)
    assert all(n.split(".")[0] in ("channels", "skip") for n in topo) and len(topo) == 18
    assert kernels == [f"kernel.{i}" for i in range(10)] and set(kernels) < set(cells)
    r = comparison_restrictions()
    assert r == {"mbnas": {}, "macro": {"variables": topo}, "micro": {"variables": cells},
                 "bilevel": {"stages": [topo, kernels]}}
    assert comparison_restrictions(5)["macro"]["variables"] == topology_variables(5)
