"""``python -m vnas_monai benchmark``: every method, the same fold, plan and wall-clock budget, one table.

Layout of ``work_dir``::

    folds.json              the fold split (vnas_monai.data.fold_datalists; the V-NAS bundles' work_dir uses the same)
    plan.json               the plan, from the fold's trainval cases (computed once, then read)
    <method>/model.pt       the trained state dict (torch.load(weights_only=True))
    <method>/result.json    per-case metrics, meta and settings; its presence means "done" (written atomically)
    <method>/metrics.csv, summary.json, summary.md   vnas_monai.evaluation reports
    benchmark.md / .csv / .json, benchmark_dice.png  the tables and box plot of all finished methods
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from vnas_monai.evaluation.tables import write_tables

from .evaluate import evaluate_method, read_result, write_result
from .registry import get_method

__all__ = ["benchmark", "DEFAULT_METHODS"]

logger = logging.getLogger(__name__)
DEFAULT_METHODS = ("unet", "dynunet", "segresnet")
#: Settings that must match for a finished method's result to be reused.
_RESUME_KEYS = ("dataset_dir", "fold", "num_folds", "seed", "budget_s", "max_cases")


def split_names(value: str | Sequence[str]) -> list[str]:
    """Method names given as ``"a,b,c"`` (or a sequence, as ``fire`` passes ``a,b,c``), blanks dropped."""
    names = [m.strip() for m in value.split(",")] if isinstance(value, str) else [str(m).strip() for m in value]
    return [m for m in names if m]


def _method_list(methods: str | Sequence[str]) -> list[str]:
    names = split_names(methods)
    if not names:
        raise ValueError("methods is empty: give e.g. --methods unet,dynunet,segresnet.")
    for m in names:
        get_method(m)  # an unknown name fails before any training
    return names


def _reuse(path: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    result = read_result(path)
    old = {k: result["settings"].get(k) for k in _RESUME_KEYS}
    new = {k: settings.get(k) for k in _RESUME_KEYS}
    if old != new:
        raise ValueError(
            f"benchmark result {path} was made with other settings ({old} != {new}): use another work_dir or delete "
            f"the file to rerun."
        )
    logger.info("%s: finished earlier (%s), not rerun", result["method"], path)
    return result


def benchmark(
    dataset_dir: str | None = None,
    budget_min: float = 30.0,
    methods: str | Sequence[str] = ",".join(DEFAULT_METHODS),
    work_dir: str = "runs/benchmark",
    fold: int = 0,
    num_folds: int = 4,
    seed: int = 0,
    max_cases: int | None = None,
    divisible_by: int = 16,
    phantom_cases: int = 12,
) -> str:
    """Train every method with the same fold, plan and wall-clock budget, evaluate on the held-out fold, tabulate.

    Example: ``python -m vnas_monai benchmark --dataset_dir /data/Task04_Hippocampus --budget_min 30
    --methods unet,dynunet,segresnet --work_dir runs/bench_hippo``.

    A method whose ``<work_dir>/<method>/result.json`` exists is not rerun (resume after a crash); the tables are
    rewritten from every finished method after each one.

    Args:
        dataset_dir: MSD or NIH dataset folder; omitted: synthetic CT phantoms in ``<work_dir>/phantom_data``.
        budget_min: wall-clock minutes per method (training, and for V-NAS its search); evaluation is not counted.
        methods: comma-separated registered names (:mod:`vnas_monai.benchmark.registry`): the baselines ``unet``,
            ``dynunet``, ``segresnet``, ``unet3d`` (Çiçek et al.'s 3D U-Net) and ``vnet`` (Milletari et al.'s V-Net),
            and the V-NAS methods ``vnas``, ``vnas_mix``, ``vnas_random1..3`` and ``vnas_<enc>_<dec>``.
        work_dir: output folder.
        fold, num_folds, seed: the fold split (as ``vnas_monai.data.fold_datalists`` and the bundles).
        max_cases: only the first ``max_cases`` cases, for quick runs.
        divisible_by: divisibility of the plan's patch (each method refits it to its network).
        phantom_cases: number of phantoms when no ``dataset_dir`` is given.

    Returns:
        The Markdown table.
    """
    from vnas_monai.data import fold_datalists, resolve_dataset_dir
    from vnas_monai.plan import describe, plan_for_work_dir

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not isinstance(budget_min, (int, float)) or isinstance(budget_min, bool) or not budget_min > 0:
        raise ValueError(f"budget_min must be a positive number of minutes, got {budget_min!r}.")
    names = _method_list(methods)
    work = Path(work_dir).expanduser()
    work.mkdir(parents=True, exist_ok=True)
    root = resolve_dataset_dir(dataset_dir, work, num_cases=phantom_cases)
    splits = fold_datalists(root, fold=fold, num_folds=num_folds, seed=seed, datalist_file=work / "folds.json",
                            max_cases=max_cases)
    if not splits["test"]:
        raise ValueError(f"num_folds={num_folds} leaves no held-out cases: the benchmark needs num_folds >= 2.")
    plan = plan_for_work_dir(work, root, splits["trainval"], divisible_by=divisible_by)
    settings = {
        "dataset_dir": root, "fold": fold, "num_folds": num_folds, "seed": seed, "max_cases": max_cases,
        "budget_s": float(budget_min) * 60.0, "threads": torch.get_num_threads(), "num_test": len(splits["test"]),
        "num_trainval": len(splits["trainval"]), "plan_summary": describe(plan),
    }
    logger.info("benchmark: %s on %s, fold %d/%d (%d trainval, %d test), %.0f s each", names, root, fold, num_folds,
                len(splits["trainval"]), len(splits["test"]), settings["budget_s"])
    results = []
    for name in names:
        path = work / name / "result.json"
        result = _reuse(path, settings)
        if result is None:
            result = _run_method(name, plan, splits, settings, work / name)
            write_result(path, result)
        results.append(result)
        write_tables(results, work, settings)
    return (work / "benchmark.md").read_text()


def _run_method(name: str, plan: dict, splits: dict, settings: dict, out: Path) -> dict[str, Any]:
    from vnas_monai.evaluation import write_reports

    out.mkdir(parents=True, exist_ok=True)
    logger.info("%s: training for %.0f s", name, settings["budget_s"])
    t0 = time.perf_counter()
    trained = get_method(name)(plan, splits, settings["budget_s"], out)
    wall = time.perf_counter() - t0
    t1 = time.perf_counter()
    records = evaluate_method(trained, plan, splits["test"])
    meta = dict(trained.meta, method_wall_s=round(wall, 2), eval_time_s=round(time.perf_counter() - t1, 2),
                checkpoint=os.path.relpath(trained.checkpoint, out))
    write_reports(records, out, plan["class_names"][1:], settings={"method": name, **meta}, title=name)
    return {"method": name, "class_names": list(plan["class_names"]), "records": records, "meta": meta,
            "settings": settings}
