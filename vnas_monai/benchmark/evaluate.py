"""Held-out evaluation of a trained method: per-case Dice, HD95 and surface Dice (``vnas_monai.evaluation``)."""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vnas_monai.io import atomic_write_text

__all__ = ["evaluate_method", "read_result", "write_result"]

logger = logging.getLogger(__name__)


def evaluate_method(
    trained: Any, plan: Mapping[str, Any], cases: Sequence[Mapping[str, Any]], tolerance_mm: float = 1.0
) -> list[dict[str, Any]]:
    """Per-case metrics of ``trained`` (a ``TrainedModel``) on ``cases``, on the plan's grid (the grid the network
    saw, as ``evaluate.json`` does), with the plan's spacing.

    Returns:
        ``[{"case", "dice": [...], "hd95_mm": [...], "surface_dice": [...]}, ...]``, one value per foreground class.
    """
    from vnas_monai.baselines.pipeline import eval_dataset
    from vnas_monai.baselines.training import predict_cases
    from vnas_monai.bundle.datalists import case_name
    from vnas_monai.evaluation import case_metrics

    num_classes = len(plan["class_names"])
    records = []
    for case, (item, pred) in zip(cases, predict_cases(trained.model, eval_dataset(cases, plan), trained.roi_size)):
        m = case_metrics(pred, item["label"], num_classes, spacing=plan["spacing"], tolerance_mm=tolerance_mm)
        records.append({"case": case_name(case["image"]), **m})
    return records


def _finite(x: Any) -> Any:
    """JSON without NaN / inf: those become strings ("nan", "inf") so that the file stays standard JSON."""
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


def _float(x: Any) -> Any:
    if isinstance(x, str) and x in ("nan", "inf", "-inf"):
        return float(x)
    if isinstance(x, list):
        return [_float(v) for v in x]
    return x


def write_result(path: str | os.PathLike, result: Mapping[str, Any]) -> Path:
    """Write a method's result JSON atomically (a crash never leaves a partial file that would be taken as done)."""
    path = Path(path)
    atomic_write_text(path, json.dumps(_finite(dict(result, written_at=time.time())), indent=1) + "\n")
    return path


def read_result(path: str | os.PathLike) -> dict[str, Any]:
    """Read a result JSON written by :func:`write_result` (NaN / inf restored in the records).

    Raises:
        ValueError: unreadable or malformed (the message names the file).
    """
    path = Path(path)
    try:
        result = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"benchmark result {path} cannot be read: {e}") from e
    if not isinstance(result, dict) or not all(k in result for k in ("method", "records", "meta", "settings")):
        raise ValueError(f"benchmark result {path} is malformed: expected 'method', 'records', 'meta', 'settings'.")
    for r in result["records"]:
        for k in ("dice", "hd95_mm", "surface_dice"):
            r[k] = _float(r[k])
    return result
