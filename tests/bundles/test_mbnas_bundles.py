"""The MB-NAS bundles (``bundles/mbnas_spleen``, ``bundles/mbnas_prostate``; Bosma et al., SPIE 2022) through MONAI's
``ConfigWorkflow`` on their embedded phantoms at tiny sizes: search -> train -> inference -> evaluate, the written
segmentations on the input's grid (shape and affine), and a search rerun in the same ``work_dir`` reusing its
archive (the strategy tests cover SIGKILL; this checks the bundle's wiring)."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tests.conftest import BUNDLES
from vnas_monai.spaces.mbnas.bundles import BUNDLES as SPECS
from vnas_monai.spaces.mbnas.bundles import bundle_configs
from vnas_monai.strategies import read_jsonl, without_time

TINY = dict(phantom_cases=6, phantom_shape=[32, 32, 8], num_folds=3, slice_size=[32, 32], patch_size=[32, 32],
            batch_size=8, init_channels=4, epochs=2, steps_per_epoch=2, num_nodes=6, max_downsamplings=2,
            num_search_folds=2, precision="fp32")


def _run(bundle: str, stage: str, **overrides) -> None:
    from monai.bundle import ConfigWorkflow

    workflow = ConfigWorkflow(config_file=str(BUNDLES / bundle / f"{stage}.json"), workflow_type=None, **overrides)
    workflow.initialize()
    workflow.run()
    workflow.finalize()


def _raised(call, kind: type, match: str) -> None:
    """``call()`` raises ``kind`` with ``match`` in its message, itself or as the cause of MONAI's wrapping error."""
    try:
        call()
    except Exception as e:  # noqa: BLE001 - MONAI's ConfigExpression wraps the stage's error in a RuntimeError
        chain = [e]
        while chain[-1].__cause__ is not None or chain[-1].__context__ is not None:
            chain.append(chain[-1].__cause__ or chain[-1].__context__)
        assert any(isinstance(x, kind) and match in str(x) for x in chain), [repr(x)[:300] for x in chain]
    else:
        raise AssertionError(f"no {kind.__name__} was raised")


def _search(bundle: str, work: Path, **overrides) -> None:
    _run(bundle, "search", run_id="search", work_dir=str(work), progress=False, **{**TINY, **overrides})


@pytest.mark.parametrize("bundle", sorted(SPECS))
def test_the_bundle_files_are_the_generators(bundle):
    for name, config in bundle_configs(bundle).items():
        assert json.loads((BUNDLES / bundle / name).read_text()) == config, f"{bundle}/{name}: run python -m " \
                                                                           "vnas_monai.spaces.mbnas.bundles"
    assert (BUNDLES / bundle / "logging.conf").is_file()


def _check_segmentations(fold: Path, channels: int) -> None:
    segs = sorted((fold / "infer").glob("*/*_seg.nii.gz"))
    assert len(segs) == 2  # S_test of fold 0 of 3 on 6 phantoms
    images = {Path(p).name.split(".")[0]: p for p in (fold / "search" / "phantom_data" / "imagesTr").iterdir()}
    for seg in segs:
        out, src = nib.load(seg), nib.load(images[seg.parent.name])
        assert out.shape == src.shape[:3] and (src.ndim == 4) == (channels == 2)
        assert np.allclose(out.affine, src.affine)
        assert set(np.unique(np.asarray(out.dataobj))) <= set(range(3))


def test_spleen_search_train_inference_evaluate_and_a_rerun_reuses_the_archive(tmp_path):
    work = tmp_path / "run"
    _search("mbnas_spleen", work, max_evaluations=3)
    search = work / "fold0" / "search"
    for name in ("trials.jsonl", "trajectory.jsonl", "best.json", "arch.json", "history.png", "best_network.png"):
        assert (search / name).is_file(), name
    records = read_jsonl(search / "trials.jsonl")
    assert len(records) == 3 and all(0.0 <= r["score"] <= 1.0 for r in records)
    assert all(r["metrics"]["params"] > 0 and r["metrics"]["precision"] == "fp32" for r in records)

    # a search cut short (its last trial and its result lost) and rerun: only the missing trial is trained
    lines = (search / "trials.jsonl").read_text().splitlines(keepends=True)
    (search / "trials.jsonl").write_text("".join(lines[:2]))
    (search / "best.json").unlink()
    _search("mbnas_spleen", work, max_evaluations=3)
    again = read_jsonl(search / "trials.jsonl")
    assert again[:2] == records[:2] and len(again) == 3  # the finished trials were reused, untouched
    assert without_time(again[2]) == without_time(records[2])  # the lost trial, trained again, deterministically
    _raised(lambda: _search("mbnas_spleen", work, max_evaluations=3, restriction="micro"), ValueError,
            "other settings")

    _run("mbnas_spleen", "train", work_dir=str(work), **TINY, max_epochs=2)
    fold = work / "fold0"
    settings = json.loads((fold / "train" / "settings.json").read_text())
    assert settings["space"] == "mbnas" and settings["patch_size"] == [32, 32] and settings["init_channels"] == 4
    assert settings["class_names"] == ["background", "organ"]
    _run("mbnas_spleen", "inference", work_dir=str(work), **{k: TINY[k] for k in ("phantom_cases", "phantom_shape",
                                                                                  "num_folds")})
    _check_segmentations(fold, channels=1)
    _run("mbnas_spleen", "evaluate", work_dir=str(work), **{k: TINY[k] for k in ("phantom_cases", "phantom_shape",
                                                                                 "num_folds")})
    summary = json.loads((fold / "eval" / "summary.json").read_text())
    assert summary["num_cases"] == 2 and summary["settings"]["tolerance_mm"] == 2.0
    assert set(summary["classes"]["organ"]) == {"dice", "hd95_mm", "surface_dice"}


def test_prostate_two_channels_search_train_inference(tmp_path):
    work = tmp_path / "run"
    _search("mbnas_prostate", work, max_evaluations=2, restriction="micro")
    best = json.loads((work / "fold0" / "search" / "best.json").read_text())
    assert best["channels"] == ["same", "down", "down", "up", "up", "same"]  # Micro-NAS keeps the U-Net topology
    _run("mbnas_prostate", "train", work_dir=str(work), **TINY, max_epochs=1)
    assert json.loads((work / "fold0" / "train" / "settings.json").read_text())["in_channels"] == 2
    _run("mbnas_prostate", "inference", work_dir=str(work), **{k: TINY[k] for k in ("phantom_cases", "phantom_shape",
                                                                                    "num_folds")})
    _check_segmentations(work / "fold0", channels=2)


def test_bad_keys_are_named(tmp_path):
    _raised(lambda: _search("mbnas_spleen", tmp_path / "bad", restriction="nested", max_evaluations=1), ValueError,
            "'restriction'")
    _raised(lambda: _run("mbnas_spleen", "train", work_dir=str(tmp_path / "none"), **TINY), FileNotFoundError,
            "run the search stage first")
