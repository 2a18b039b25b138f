"""Paired per-case comparison of benchmark rows: hand-computed differences, the mean of several rows, refusals, and
the ``python -m vnas_monai paired`` command on results written by the benchmark's own writer."""

from __future__ import annotations

import json
import math

import pytest

from vnas_monai.benchmark.evaluate import write_result
from vnas_monai.benchmark.paired import paired
from vnas_monai.cli import main
from vnas_monai.evaluation.paired import case_dice, format_paired, paired_difference


def _result(name: str, dice: dict[str, list[float]]) -> dict:
    records = [{"case": c, "dice": d, "hd95_mm": [1.0] * len(d), "surface_dice": [0.9] * len(d)}
               for c, d in dice.items()]
    return {"method": name, "records": records, "meta": {}, "settings": {}, "class_names": ["bg", "a", "b"]}


A = _result("a", {"c1": [0.80, 0.90], "c2": [0.70, 0.70], "c3": [0.60, float("nan")], "c4": [0.5, 0.5]})
B = _result("b", {"c1": [0.80, 0.80], "c2": [0.60, 0.70], "c3": [0.70, 0.70], "c4": [0.5, 0.5]})
C = _result("c", {"c1": [0.70, 0.70], "c2": [0.70, 0.70], "c3": [0.50, 0.50], "c4": [0.5, 0.5]})


def test_case_dice_averages_foreground_classes_leaving_absent_out():
    assert case_dice(A) == pytest.approx({"c1": 0.85, "c2": 0.70, "c3": 0.60, "c4": 0.5})


def test_paired_difference_by_hand():
    d = paired_difference(A, [B])
    diffs = [5.0, 5.0, -10.0, 0.0]  # (0.85 - 0.80), (0.70 - 0.65), (0.60 - 0.70), 0, in Dice points
    mean = sum(diffs) / 4
    sd = math.sqrt(sum((x - mean) ** 2 for x in diffs) / 3)
    assert d["n"] == 4 and d["wins"] == 2 and d["losses"] == 1
    assert d["diff"] == pytest.approx(mean) and d["se"] == pytest.approx(sd / 2)
    assert d["mean_a"] == pytest.approx(66.25) and d["mean_b"] == pytest.approx(66.25 - mean)
    assert 0 < d["wilcoxon_p"] <= 1
    # against the mean of two rows: per case, B and C averaged first (0.75, 0.675, 0.60, 0.5)
    m = paired_difference(A, [B, C])
    assert m["b"] == ["b", "c"]
    assert m["diff"] == pytest.approx((10.0 + 2.5 + 0.0 + 0.0) / 4) and m["wins"] == 2 and m["losses"] == 0
    assert "a (66.25) - mean(b, c)" in format_paired(m)


def test_paired_difference_refuses_other_cases():
    other = _result("d", {"c1": [0.8, 0.8], "c9": [0.8, 0.8]})
    with pytest.raises(ValueError, match="different cases"):
        paired_difference(A, [other])
    with pytest.raises(ValueError, match="at least one"):
        paired_difference(A, [])


def test_paired_command_reads_a_benchmark_work_dir(tmp_path, capsys):
    for r in (A, B, C):
        write_result(tmp_path / r["method"] / "result.json", r)
    out = tmp_path / "paired.json"
    main(["paired", "--work_dir", str(tmp_path), "--method", "a", "--against", "b,c", "--output", str(out)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("a (66.25) - b (") and "mean(b, c)" in lines[2]
    rows = json.loads(out.read_text())
    assert [r["b"] for r in rows] == [["b"], ["c"], ["b", "c"]]
    with pytest.raises(FileNotFoundError, match="no finished benchmark row 'missing'"):
        paired(str(tmp_path), "a", "missing")  # the CLI prints this message and exits 1


def test_rows_kept_as_metrics_csv_elsewhere_compare_as_their_results(tmp_path):
    from vnas_monai.evaluation import read_metrics, write_reports

    for r in (A, B):
        write_result(tmp_path / "run" / r["method"] / "result.json", r)
    # row c as an earlier run keeps it under benchmarks/results: only the evaluation's reports
    write_reports(C["records"], tmp_path / "kept" / "c", C["class_names"][1:])
    records, classes = read_metrics(tmp_path / "kept" / "c" / "metrics.csv")
    assert classes == ["a", "b"] and [r["case"] for r in records] == ["c1", "c2", "c3", "c4"]
    assert records[2]["dice"] == pytest.approx([0.5, 0.5]) and records[0]["hd95_mm"] == [1.0, 1.0]
    by_path = paired(str(tmp_path / "run"), "a", f"b,{tmp_path / 'kept' / 'c'}")
    assert by_path.splitlines()[2] == format_paired(paired_difference(A, [B, C]))
    (tmp_path / "bad.csv").write_text("case,class,dice\nc1,a,0.5\n")
    with pytest.raises(ValueError, match="bad.csv is not a metrics.csv"):
        read_metrics(tmp_path / "bad.csv")
