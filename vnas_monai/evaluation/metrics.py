"""Per-case segmentation metrics and the paper's summary (Zhu et al., 3DV 2019, Tables 2-4).

For every case and every foreground class: Dice-Sorensen coefficient, 95 % Hausdorff distance (mm) and surface Dice
at a tolerance in mm, all computed with MONAI's metric functions on the grid the network saw, with that grid's voxel
spacing. The summary gives per class and metric ``mean``, ``std`` (population, ddof=0), ``max``, ``min``, ``median``
and ``n`` (finite values only: a class absent from a case's ground truth gives NaN Dice, an empty prediction an
infinite HD95; both are left out of the statistics and counted in ``n_undefined``). The files are written by
:mod:`vnas_monai.evaluation.reports`, per case during an evaluation by :mod:`vnas_monai.evaluation.writers`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["METRICS", "PERCENT_METRICS", "case_metrics", "summarize"]

#: Metric names, in column order.
METRICS: tuple[str, ...] = ("dice", "hd95_mm", "surface_dice")
#: metrics reported in %
PERCENT_METRICS = frozenset({"dice", "surface_dice"})


def _as_index_map(x: Any, name: str) -> torch.Tensor:
    t = torch.as_tensor(x.detach().cpu() if isinstance(x, torch.Tensor) else np.asarray(x))
    t = t.as_tensor() if hasattr(t, "as_tensor") else t
    if t.ndim == 4 and t.shape[0] == 1:
        t = t[0]
    elif t.ndim == 4:
        t = t.argmax(0)  # one-hot / probabilities, channel first
    if t.ndim != 3:
        raise ValueError(f"{name} must be a 3D label map (optionally with one channel), got shape {tuple(t.shape)}.")
    return t.round().long()


def _one_hot(index: torch.Tensor, num_classes: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(index.clamp(0, num_classes - 1), num_classes).permute(3, 0, 1, 2)[None].float()


def case_metrics(
    pred: Any, label: Any, num_classes: int, spacing: Sequence[float] | None = None, tolerance_mm: float = 1.0
) -> dict[str, list[float]]:
    """Dice, HD95 (mm) and surface Dice of one case, per foreground class ``1 .. num_classes - 1``.

    Args:
        pred: predicted label map, (H, W, D) or (1, H, W, D), or class scores (C, H, W, D).
        label: ground-truth label map of the same grid.
        num_classes: classes including background.
        spacing: voxel size in mm (``None``: 1 mm).
        tolerance_mm: surface Dice tolerance.

    Returns:
        ``{"dice": [...], "hd95_mm": [...], "surface_dice": [...]}``, one value per foreground class; NaN where the
        class is absent from the ground truth (Dice) or from both maps, ``inf`` (HD95) / 0 where only one has it.

    Raises:
        ValueError: shapes differ or ``num_classes`` < 2.
    """
    from monai.metrics import compute_dice, compute_hausdorff_distance, compute_surface_dice

    if int(num_classes) < 2:
        raise ValueError(f"num_classes must be >= 2 (background + a class), got {num_classes}.")
    p, y = _as_index_map(pred, "pred"), _as_index_map(label, "label")
    if p.shape != y.shape:
        raise ValueError(f"prediction shape {tuple(p.shape)} differs from label shape {tuple(y.shape)}.")
    p1, y1 = _one_hot(p, num_classes), _one_hot(y, num_classes)
    sp = [float(s) for s in spacing] if spacing is not None else None
    import warnings

    with warnings.catch_warnings():  # MONAI warns about empty classes; they are reported as NaN / inf
        warnings.simplefilter("ignore")
        dice = compute_dice(p1, y1, include_background=False, ignore_empty=True)[0]
        hd95 = compute_hausdorff_distance(p1, y1, include_background=False, percentile=95, spacing=sp)[0]
        nsd = compute_surface_dice(
            p1, y1, class_thresholds=[float(tolerance_mm)] * (num_classes - 1), include_background=False, spacing=sp
        )[0]
    out = {
        "dice": [float(v) for v in dice],
        "hd95_mm": [float(v) for v in hd95],
        "surface_dice": [float(v) for v in nsd],
    }
    for c in range(1, num_classes):
        in_p, in_y = bool((p == c).any()), bool((y == c).any())
        if not in_y:
            out["dice"][c - 1] = math.nan
        if in_y != in_p:
            out["hd95_mm"][c - 1] = math.inf
        elif not in_y:
            out["hd95_mm"][c - 1] = out["surface_dice"][c - 1] = math.nan
    return out


def _stats(values: Sequence[float]) -> dict[str, Any]:
    finite = np.array([v for v in values if math.isfinite(v)], dtype=float)
    stats: dict[str, Any] = {"n": int(finite.size), "n_undefined": int(len(values) - finite.size)}
    for name, fn in (("mean", np.mean), ("std", np.std), ("max", np.max), ("min", np.min), ("median", np.median)):
        stats[name] = float(fn(finite)) if finite.size else None
    return stats


def _check_records(records: Sequence[Mapping[str, Any]], class_names: Sequence[str]) -> None:
    for r in records:
        if "case" not in r or not all(len(r.get(m, ())) == len(class_names) for m in METRICS):
            raise ValueError(
                f"metric record {r!r} must have 'case' and one value per class {list(class_names)} for each of "
                f"{list(METRICS)}."
            )


def summarize(records: Sequence[Mapping[str, Any]], class_names: Sequence[str]) -> dict[str, Any]:
    """The paper's summary: per class, per metric, mean / std / max / min / median over the cases.

    Args:
        records: ``{"case": name, "dice": [...], "hd95_mm": [...], "surface_dice": [...]}`` per case, one value per
            foreground class (as :func:`case_metrics` returns, plus ``case``).
        class_names: foreground class names, in class order.
    """
    _check_records(records, class_names)
    classes = {
        name: {m: _stats([float(r[m][i]) for r in records]) for m in METRICS} for i, name in enumerate(class_names)
    }
    return {"num_cases": len(records), "classes": classes}
