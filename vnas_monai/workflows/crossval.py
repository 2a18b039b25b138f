"""The paper's cross-validation protocol in one command (Zhu et al., 3DV 2019, §3.1).

For each fold k of ``num_folds``: search on S_train / S_val of the other folds; then sum the folds' choice
probabilities and take the argmax (one architecture for all folds); then retrain that architecture from scratch on
each fold's S_train + S_val, and evaluate it on the fold's S_test. Every stage is a run of the dataset's bundle
(``search.json``, ``train.json``, ``evaluate.json``) through MONAI's ``ConfigWorkflow``, with one set of overrides;
a stage whose outputs exist is skipped, and a stage that was interrupted resumes from its own checkpoints.

Layout under ``work_dir``::

    folds.json                       the seeded split shared by every stage
    fold<k>/search/arch.json         each fold's search ("complete": true when finished)
    arch.json                        the aggregated architecture
    fold<k>/train/model.pt           each fold's retrained weights
    fold<k>/eval/metrics.csv         per-case metrics on S_test; summary.json
    metrics.csv, summary.json, summary.md   all folds' test cases together (the paper's table)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vnas_monai.evaluation import format_markdown, read_metrics, write_reports
from vnas_monai.spaces.aggregate import aggregate
from vnas_monai.spaces.vnas.encoding import Architecture

__all__ = ["crossval", "run_bundle", "search_complete", "STAGES"]

logger = logging.getLogger(__name__)

STAGES = ("search", "aggregate", "train", "evaluate")


def run_bundle(config_file: str | Path, run_id: str, **overrides: Any) -> None:
    """Run ``run_id`` of a bundle config with top-level key overrides, as ``python -m monai.bundle run`` does."""
    from monai.bundle import ConfigWorkflow

    config_file = Path(config_file)
    if not config_file.is_file():
        raise FileNotFoundError(f"bundle config {config_file} does not exist.")
    workflow = ConfigWorkflow(config_file=str(config_file), workflow_type=None, run_id=run_id, **overrides)
    workflow.initialize()
    try:
        workflow.run()
    finally:
        workflow.finalize()


def _top_level_keys(config_file: Path) -> set[str]:
    if not config_file.is_file():
        raise FileNotFoundError(f"bundle config {config_file} does not exist.")
    return set(json.loads(config_file.read_text()))


def search_complete(arch_file: Path) -> bool:
    """True when ``arch_file`` is a finished search's arch.json."""
    if not arch_file.is_file():
        return False
    try:
        return bool(json.loads(arch_file.read_text()).get("complete", False))
    except json.JSONDecodeError:
        return False


def _combine_metrics(work_dir: Path, folds: Sequence[int]) -> tuple[list[dict[str, Any]], list[str]]:
    """All folds' per-case metrics (``fold<k>/eval/metrics.csv``, one row per case and class) as records."""
    records: list[dict[str, Any]] = []
    classes: list[str] = []
    for k in folds:
        path = work_dir / f"fold{k}" / "eval" / "metrics.csv"
        if not path.is_file():
            raise FileNotFoundError(f"fold {k} has no evaluation: {path} is missing.")
        fold_records, fold_classes = read_metrics(path, case_prefix=f"fold{k}/")
        records += fold_records
        classes += [c for c in fold_classes if c not in classes]
    return records, classes


def crossval(
    bundle_dir: str = "bundles/vnas_nih",
    work_dir: str = "runs/vnas_nih",
    dataset_dir: str | None = None,
    num_folds: int = 4,
    folds: Sequence[int] | None = None,
    stages: Sequence[str] = STAGES,
    arch: str | None = None,
    force: bool = False,
    **overrides: Any,
) -> dict[str, Any]:
    """Search, aggregate, retrain and evaluate every fold; print and return the cross-validated summary.

    Args:
        bundle_dir: a dataset bundle (``bundles/vnas_nih``, ``bundles/vnas_msd_lung``, ``bundles/vnas_msd_pancreas``).
        work_dir: root of this experiment's outputs (see the module docstring).
        dataset_dir: the dataset (MSD or NIH layout); None uses the embedded synthetic CT.
        num_folds: folds of the cross-validation (paper: 4).
        folds: the folds to run (default: all).
        stages: a subset of ``("search", "aggregate", "train", "evaluate")``.
        arch: skip the search and aggregation and retrain this architecture (arch.json path or preset), e.g. the
            paper's transfer experiment (``--arch nih`` on the lung bundle).
        force: rerun stages whose outputs exist.
        **overrides: top-level keys passed to every stage (``max_epochs``, ``init_filters``, ``roi_size``, ...).
            A key for one stage only is written ``search__max_epochs`` / ``train__max_epochs``.

    Returns:
        The cross-validated summary (per class mean, std, max, min, median of each metric) as ``summary.json``.
    """
    bundle = Path(bundle_dir)
    work = Path(work_dir)
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown stages {unknown}; choose from {list(STAGES)}.")
    folds = list(range(num_folds)) if folds is None else [int(k) for k in folds]
    bad = [k for k in folds if not 0 <= k < num_folds]
    if bad:
        raise ValueError(f"folds {bad} out of range for num_folds={num_folds}.")
    common: dict[str, Any] = {"work_dir": str(work), "dataset_dir": dataset_dir, "num_folds": num_folds}
    per_stage: dict[str, dict[str, Any]] = {s: {} for s in STAGES}
    for key, value in overrides.items():
        stage, sep, name = key.partition("__")
        if sep and stage in STAGES:
            per_stage[stage][name] = value
        else:
            common[key] = value

    # Each stage gets the common keys its config declares (max_epochs means nothing to evaluate.json); a key that
    # no stage declares is a typo, and is refused before anything runs.
    stage_keys = {s: _top_level_keys(bundle / f"{s}.json") for s in STAGES if s != "aggregate"}
    known = set().union(*stage_keys.values())
    typos = sorted(k for k in common if k not in known)
    typos += sorted(f"{s}__{k}" for s, kv in per_stage.items() for k in kv if k not in stage_keys.get(s, set()))
    if typos:
        raise ValueError(f"unknown bundle keys {typos} for {bundle}; check the spelling against the bundle configs.")

    def run(stage: str, fold: int, **extra: Any) -> None:
        logger.info(f"crossval: {stage} fold {fold}")
        keys = {k: v for k, v in common.items() if k in stage_keys[stage]}
        run_id = "search" if stage == "search" else "run"
        run_bundle(bundle / f"{stage}.json", run_id, **{**keys, **per_stage[stage], "fold": fold, **extra})

    arch_file = work / "arch.json"
    if arch is not None:
        if force or not arch_file.exists():
            Architecture.resolve(arch).save(arch_file)
        stages = [s for s in stages if s not in ("search", "aggregate")]
    if "search" in stages:
        for k in folds:
            if force or not search_complete(work / f"fold{k}" / "search" / "arch.json"):
                run("search", k)
    if "aggregate" in stages:
        fold_files = [work / f"fold{k}" / "search" / "arch.json" for k in range(num_folds)]
        missing = [str(f) for f in fold_files if not search_complete(f)]
        if missing:
            raise FileNotFoundError(f"cannot aggregate: unfinished or missing searches {missing}.")
        final = aggregate(fold_files)
        final.save(arch_file)
        enc, dec = final.to_paper()
        print(f"aggregated architecture: encoder [{enc}]  decoder [{dec}]  -> {arch_file}")
    if "train" in stages:
        if not arch_file.is_file():
            raise FileNotFoundError(f"no architecture to retrain: {arch_file} is missing (run search and aggregate).")
        for k in folds:
            if force or not (work / f"fold{k}" / "train" / "model.pt").is_file():
                run("train", k, arch=str(arch_file))
    summary: dict[str, Any] = {}
    if "evaluate" in stages:
        for k in folds:
            if force or not (work / f"fold{k}" / "eval" / "metrics.csv").is_file():
                run("evaluate", k, arch=str(arch_file), checkpoint=str(work / f"fold{k}" / "train" / "model.pt"))
        records, classes = _combine_metrics(work, folds)
        title = f"{bundle.name}: {len(folds)}-fold cross-validation"
        summary = write_reports(records, work, classes, settings={"folds": folds, "bundle": str(bundle)}, title=title)
        print(format_markdown(summary, title))
    return summary
