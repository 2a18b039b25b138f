import json

import pytest
import torch

from vnas_monai.spaces.vnas.encoding import PRESETS, Architecture


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_paper_codes_round_trip(name, tmp_path):
    enc, dec = PRESETS[name]
    arch = Architecture.from_paper(enc, dec)
    assert arch.to_paper() == (enc, dec)
    assert Architecture.preset(name) == arch
    assert Architecture.from_json(arch.to_json()) == arch
    path = arch.save(tmp_path / "arch.json")
    data = json.loads(path.read_text())
    assert data["encoder"] == arch.encoder and data["decoder"] == arch.decoder
    assert Architecture.load(path) == arch


def test_nih_code_matches_paper_table_2():
    arch = Architecture.preset("nih")
    assert arch.encoder == [0, 0, 0, 0, 0, 0, 1, 2, 0, 2, 0, 2, 2, 0, 0, 0]
    assert arch.decoder == [0, 0, 1, 0, 1]


def test_probabilities_saved_as_plain_json(tmp_path):
    probs = {"encoder": [[0.2, 0.5, 0.3]] * 16, "decoder": [[0.6, 0.2, 0.2]] * 5}
    arch = Architecture([1] * 16, [0] * 5, probs, meta={"history": [{"epoch": 1}]})
    back = Architecture.load(arch.save(tmp_path / "a.json"))
    assert back.probabilities == probs and back.meta["history"] == [{"epoch": 1}]
    torch.save({"arch": arch.to_dict()}, tmp_path / "c.pt")
    assert torch.load(tmp_path / "c.pt", weights_only=True)["arch"]["encoder"] == [1] * 16


@pytest.mark.parametrize(
    "encoder, decoder, match",
    [
        ([0] * 15, [0] * 5, "encoder must have 16"),
        ([0] * 16, [0] * 6, "decoder must have 5"),
        ([0] * 15 + [3], [0] * 5, r"encoder\[15\] = 3"),
        ([0] * 16, [0, 0, -1, 0, 0], r"decoder\[2\] = -1"),
        ([0] * 16, [0, 0, 0.5, 0, 0], r"decoder\[2\] must be an int"),
        ("0" * 16, [0] * 5, "sequence"),
    ],
)
def test_bad_codes_raise(encoder, decoder, match):
    with pytest.raises(ValueError, match=match):
        Architecture(encoder, decoder)


def test_bad_paper_strings_and_files(tmp_path):
    with pytest.raises(ValueError, match="groups"):
        Architecture.from_paper("0 0 0 0, 0 0 0, 2 0 2 0 2 2, 0 0 0", "0 0 1 0 1")
    with pytest.raises(ValueError, match="integers"):
        Architecture.from_paper("0 0 x", "0")
    with pytest.raises(ValueError, match="unknown architecture preset"):
        Architecture.preset("liver")
    bad = tmp_path / "bad.json"
    bad.write_text('{"encoder": [0, 0], "decoder": [0, 0, 0, 0, 0]}')
    with pytest.raises(ValueError, match=f"{bad}.*encoder must have 16"):
        Architecture.load(bad)
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        Architecture.load(bad)
    with pytest.raises(FileNotFoundError, match="missing.json"):
        Architecture.load(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="3 values"):
        Architecture([0] * 16, [0] * 5, {"encoder": [[1.0, 0.0]] * 16, "decoder": [[1.0, 0.0, 0.0]] * 5})


def test_resolve_accepts_every_form(tmp_path):
    nih = Architecture.preset("nih")
    assert Architecture.resolve("nih") == nih
    assert Architecture.resolve(nih.save(tmp_path / "x.json")) == nih
    assert Architecture.resolve(str(tmp_path / "x.json")) == nih
    assert Architecture.resolve(nih.to_dict()) == nih
    assert Architecture.resolve("p3d").codes == [2] * 21


def test_aggregate_sums_fold_probabilities(tmp_path):
    from vnas_monai.spaces.aggregate import aggregate

    def fold(enc_row, dec_row, name):
        probs = {"encoder": [enc_row] * 16, "decoder": [dec_row] * 5}
        return Architecture([0] * 16, [0] * 5, probs).save(tmp_path / name)

    # Encoder: folds 1-2 prefer P3D weakly, folds 0 and 3 prefer 3D, strongly in fold 3: the sum picks 3D.
    # Decoder: P3D wins two folds of four, but 2D has the larger sum (1.8 vs 1.5): the sum, not a vote, decides.
    files = [
        fold([0.3, 0.4, 0.3], [0.5, 0.2, 0.3], "f0.json"),
        fold([0.3, 0.3, 0.4], [0.2, 0.2, 0.6], "f1.json"),
        fold([0.3, 0.3, 0.4], [0.2, 0.2, 0.6], "f2.json"),
        fold([0.0, 0.9, 0.1], [0.9, 0.1, 0.0], "f3.json"),
    ]
    arch = aggregate(files)
    assert arch.encoder == [1] * 16 and arch.decoder == [0] * 5
    assert abs(arch.probabilities["encoder"][0][1] - 0.475) < 1e-9
    with pytest.raises(ValueError, match="probabilities"):
        aggregate([Architecture.preset("nih")])


def test_cli_aggregate_and_show(tmp_path, capsys):
    from vnas_monai import cli

    a = Architecture.preset("nih")
    a.probabilities = {"encoder": [[1.0, 0.0, 0.0]] * 16, "decoder": [[0.0, 1.0, 0.0]] * 5}
    out = cli.aggregate(str(a.save(tmp_path / "f0.json")), output=str(tmp_path / "arch.json"))
    assert Architecture.load(out).codes == [0] * 16 + [1] * 5
    assert "0 0 0, 0 0 0 0" in capsys.readouterr().out
    assert cli.show("msd_lung") == "encoder [0 0 0, 1 2 0 1, 2 1 2 0 0 0, 0 0 0]  decoder [0 0 2 1 1]"


def test_from_codes_and_random():
    arch = Architecture.preset("msd_pancreas")
    assert Architecture.from_codes(arch.codes) == arch
    with pytest.raises(ValueError, match="21 codes, got 20"):
        Architecture.from_codes(arch.codes[:-1])
    assert Architecture.random(7) == Architecture.random(7) != Architecture.random(8)


def test_manual_choices_of_table_1():
    from vnas_monai.benchmark.registry import get_method

    arch = Architecture.manual("2d", "p3d")
    assert arch.encoder == [0] * 16 and arch.decoder == [2] * 5
    assert all(callable(get_method(f"vnas_{e}_{d}")) for e in ("2d", "3d", "p3d") for d in ("2d", "3d", "p3d"))
