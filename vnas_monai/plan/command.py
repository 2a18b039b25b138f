"""The ``plan`` command and the per-``work_dir`` plan that every stage of a fold reads."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .fingerprint import MAX_CASES, fingerprint
from .planner import describe, load_plan, make_plan, write_plan

__all__ = ["compute_plan", "plan", "plan_for_work_dir", "resolve_plan", "plan_value"]

logger = logging.getLogger(__name__)


def compute_plan(
    dataset_dir: str | os.PathLike,
    cases: Sequence[Mapping[str, Any]] | None = None,
    divisible_by: int | Sequence[int] = 16,
    max_cases: int | None = MAX_CASES,
    seed: int = 0,
    **plan_kwargs: Any,
) -> dict[str, Any]:
    """Fingerprint ``cases`` (default: every labelled case of ``dataset_dir``) and derive a plan (logged).

    Args:
        dataset_dir: the dataset folder (MSD or NIH layout).
        cases: the cases to analyse, e.g. a fold's ``trainval`` so that held-out cases do not shape the plan.
        divisible_by, **plan_kwargs: see :func:`vnas_monai.plan.make_plan`.
        max_cases, seed: see :func:`vnas_monai.plan.fingerprint`.
    """
    from vnas_monai.data import load_datalist

    cases = load_datalist(dataset_dir) if cases is None else cases
    fp = fingerprint(cases, dataset_dir, max_cases=max_cases, seed=seed)
    result = make_plan(fp, divisible_by=divisible_by, dataset_dir=str(dataset_dir), **plan_kwargs)
    logger.info("plan: %s", describe(result))
    return result


def plan_for_work_dir(
    work_dir: str | os.PathLike, dataset_dir: str | os.PathLike, cases: Sequence[Mapping[str, Any]], **kwargs: Any
) -> dict[str, Any]:
    """The plan of a run folder: ``<work_dir>/plan.json`` if it exists, else computed from ``cases`` and written
    there, so that every stage and method of a fold reads the same plan (``plan: "auto"``)."""
    path = Path(work_dir) / "plan.json"
    if path.is_file():
        result = load_plan(path)
        logger.info("plan (from %s): %s", path, describe(result))
        return result
    result = compute_plan(dataset_dir, cases, **kwargs)
    write_plan(result, path)
    return result


def resolve_plan(
    spec: Any,
    work_dir: str | os.PathLike,
    dataset_dir: str | os.PathLike,
    cases: Sequence[Mapping[str, Any]],
    divisible_by: int | Sequence[int] = 32,
) -> dict[str, Any] | None:
    """A bundle's ``plan`` key: ``None`` (no plan: the bundle's own defaults), ``"auto"`` (``<work_dir>/plan.json``,
    computed once from ``cases``), a plan file path, or a plan dict.

    Example bundle keys (the V-NAS bundles; V-NAS needs patches divisible by 32)::

        "plan": null,
        "plan_dict": "$vnas_monai.plan.resolve_plan(@plan, @work_dir, @dataset_dir, @splits['trainval'], 32)",
        "roi_size": "$vnas_monai.plan.plan_value(@plan_dict, 'roi_size', [96, 96, 64])",

    Raises:
        ValueError: a malformed plan (names the file and key) or an unknown ``spec``.
    """
    from .planner import check_plan

    if spec is None or spec is False or spec == "none":
        return None
    if isinstance(spec, Mapping):
        return dict(check_plan(spec, "plan"))
    if spec == "auto":
        return plan_for_work_dir(work_dir, dataset_dir, cases, divisible_by=divisible_by)
    if isinstance(spec, (str, os.PathLike)):
        return load_plan(spec)
    raise ValueError(f"plan must be null, 'auto', a plan file or a plan object, got {spec!r}.")


def plan_value(plan_dict: Mapping[str, Any] | None, key: str, default: Any) -> Any:
    """``plan_overrides(plan_dict)[key]``, or ``default`` when there is no plan.

    Raises:
        KeyError: ``key`` is not an override a plan gives (the message lists them).
    """
    from .planner import plan_overrides

    if plan_dict is None:
        return default
    overrides = plan_overrides(plan_dict)
    if key not in overrides:
        raise KeyError(f"plan gives no override {key!r}; it gives {sorted(overrides)}.")
    return overrides[key]


def plan(
    dataset_dir: str,
    output: str | None = "plan.json",
    divisible_by: int = 16,
    fold: int | None = None,
    num_folds: int = 4,
    seed: int = 0,
    max_cases: int | None = MAX_CASES,
    memory_budget_mb: float = 4096.0,
) -> str:
    """Fingerprint a dataset with MONAI's Auto3DSeg ``DataAnalyzer`` and write the plan derived from it as JSON.

    Example: ``python -m vnas_monai plan --dataset_dir /data/Task04_Hippocampus --output plan.json --fold 0``.

    Args:
        dataset_dir: the dataset folder (MSD or NIH Pancreas-CT layout).
        output: the plan JSON file (``None``: print only).
        divisible_by: the network's down-sampling factor the patch must be a multiple of (V-NAS: 32).
        fold: plan from the ``trainval`` cases of this fold only (the split of ``vnas_monai.data.fold_datalists``);
            default: all cases.
        num_folds, seed: the fold split.
        max_cases: analyse at most this many cases (a seeded subset).
        memory_budget_mb: memory one training step may use.

    Returns:
        The plan as JSON text (also written to ``output``).
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cases = None
    if fold is not None:
        from vnas_monai.data import fold_datalists

        cases = fold_datalists(dataset_dir, fold=fold, num_folds=num_folds, seed=seed)["trainval"]
    result = compute_plan(
        dataset_dir, cases, divisible_by=divisible_by, max_cases=max_cases, seed=seed, memory_budget_mb=memory_budget_mb
    )
    if output:
        write_plan(result, output)
        logger.info("wrote %s", output)
    return json.dumps(result, indent=1)
