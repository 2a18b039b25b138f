"""MB-NAS's local search (Bosma et al. 2022, §2.3) over this space with cheap fake scores, and the §2.4 restrictions
(Macro-, Micro- and Bilevel-NAS) as variable sets of the one space."""

from __future__ import annotations

from vnas_monai.spaces.mbnas import comparison_restrictions, problems, unet_encoding
from vnas_monai.spaces.mbnas.cost import cost_report
from vnas_monai.strategies import TrialArchive, local_search, read_jsonl

UNET5 = unet_encoding(5, max_downsamplings=2)


def params_score(encoding, fold, seed):
    """Fewer parameters score higher (a small 2D network, costed on the meta device)."""
    report = cost_report(encoding, (16, 16), init_channels=4)
    return {"score": -report["params"] / 1e4, "params": report["params"]}


def distance_score(encoding, fold, seed):
    """The number of choices that differ from the 5-node U-Net's: every change is an improvement."""
    a, b = encoding.to_dict(), UNET5.to_dict()
    return {"score": float(sum(x != y for part in ("channels", "blocks", "kernels", "skips")
                               for x, y in zip(a[part], b[part])))}


def test_local_search_over_the_space_with_a_params_score(tmp_path):
    unet = unet_encoding()
    result = local_search(unet, params_score, TrialArchive(tmp_path / "t.jsonl"), budget=12, seed=1, progress=False)
    assert result.evaluations == 12 and not result.converged
    assert result.score > params_score(unet, 0, 0)["score"] and result.best != unet
    assert problems(result.best) == []


def test_comparison_restrictions_are_accepted_and_respected(tmp_path):
    r = comparison_restrictions(5)
    runs = {}
    for name in ("macro", "micro", "bilevel"):
        runs[name] = local_search(UNET5, distance_score, TrialArchive(tmp_path / f"{name}.jsonl"), budget=400,
                                  seed=0, trajectory=tmp_path / f"{name}.traj.jsonl", progress=False, **r[name])
        assert runs[name].converged and runs[name].best != UNET5 and problems(runs[name].best) == []
    macro, micro, bilevel = (runs[k].best for k in ("macro", "micro", "bilevel"))
    assert macro.blocks == UNET5.blocks and macro.kernels == UNET5.kernels  # topology only, VGG kept
    assert micro.channels == UNET5.channels and micro.skips == UNET5.skips  # the U-Net topology kept
    assert bilevel.blocks == UNET5.blocks and bilevel.kernels != UNET5.kernels and bilevel.channels != UNET5.channels
    steps = [s for s in read_jsonl(tmp_path / "bilevel.traj.jsonl") if s["event"] == "step"]
    stage_of = {s["variable"]: s["stage"] for s in steps}
    assert {v for v, st in stage_of.items() if st == 1} == set(r["bilevel"]["stages"][1])
    assert [s["stage"] for s in steps] == sorted(s["stage"] for s in steps)  # topology first, then kernels
    full = local_search(UNET5, distance_score, TrialArchive(tmp_path / "mbnas.jsonl"), budget=400, seed=0,
                        progress=False, **r["mbnas"])
    assert full.converged and full.score >= max(runs[k].score for k in runs)
