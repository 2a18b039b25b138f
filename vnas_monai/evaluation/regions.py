"""Per-region metrics of the BraTS evaluation (Wang, BraTS 2019, §3.5, Eq. 4-7 and Tables 3-4).

For each region (ET, TC, WT, or any :mod:`vnas_monai.data.regions` layout) of one case, from binary masks:

- ``dice`` (Eq. 4), with MONAI's ``compute_dice``;
- ``sensitivity`` = TP / (TP + FN) (Eq. 5) and ``specificity`` = TN / (TN + FP) (Eq. 6), from MONAI's
  ``get_confusion_matrix`` / ``compute_confusion_matrix_metric``;
- ``hd95_mm``: the 95 % Hausdorff distance of the surfaces (Eq. 7), MONAI's ``compute_hausdorff_distance`` with
  ``percentile=95`` in mm (``spacing``).

Empty masks follow the BraTS challenge's convention: a region absent from both the ground truth and the prediction
scores Dice 1 and HD95 0; absent from exactly one, Dice 0 and HD95 the diagonal of the volume in mm (the BraTS
toolkit's 373.13 mm on its 240 x 240 x 155 grid). Sensitivity is undefined (``None``) without ground-truth voxels
and specificity without background voxels. Every value is a plain float or ``None``, so the records are JSON.

Shapes: masks are ``(R, *spatial)`` (or ``(1, R, *spatial)``), values 0/1 or bool (thresholded at 0.5).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["REGION_METRICS", "label_region_metrics", "region_case_metrics", "summarize_regions"]

#: the metrics of Table 4, in its column order
REGION_METRICS: tuple[str, ...] = ("dice", "sensitivity", "specificity", "hd95_mm")


def _masks(x: Any, name: str) -> torch.Tensor:
    t = torch.as_tensor(x.detach().cpu() if isinstance(x, torch.Tensor) else np.asarray(x))
    t = t.as_tensor() if hasattr(t, "as_tensor") else t
    if t.ndim == 5 and t.shape[0] == 1:
        t = t[0]
    if t.ndim < 3:
        raise ValueError(f"{name} must be region masks (R, *spatial) with 2 or 3 spatial axes, got shape "
                         f"{tuple(t.shape)}.")
    return (t.float() > 0.5).float()


def _finite(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def region_case_metrics(pred: Any, label: Any, region_names: Sequence[str],
                        spacing: Sequence[float] | None = None) -> dict[str, dict[str, float | None]]:
    """Dice, sensitivity, specificity and HD95 (mm) of one case per region.

    Args:
        pred: predicted region masks ``(R, *spatial)``.
        label: ground-truth region masks, the same shape.
        region_names: one name per channel, e.g. ``["ET", "TC", "WT"]``.
        spacing: voxel size in mm (``None``: 1 mm).

    Returns:
        ``{region: {"dice": ..., "sensitivity": ..., "specificity": ..., "hd95_mm": ...}}`` (module docstring).

    Raises:
        ValueError: shapes differ, or the names do not match the channels.
    """
    from monai.metrics import (
        compute_confusion_matrix_metric,
        compute_dice,
        compute_hausdorff_distance,
        get_confusion_matrix,
    )

    p, y = _masks(pred, "pred"), _masks(label, "label")
    names = [str(n) for n in region_names]
    if p.shape != y.shape:
        raise ValueError(f"prediction shape {tuple(p.shape)} differs from label shape {tuple(y.shape)}.")
    if len(names) != p.shape[0]:
        raise ValueError(f"{p.shape[0]} region channels but {len(names)} region names {names}.")
    sp = [float(s) for s in spacing] if spacing is not None else [1.0] * (p.ndim - 1)
    if len(sp) != p.ndim - 1:
        raise ValueError(f"spacing {list(sp)} must have one value per spatial axis ({p.ndim - 1}).")
    diagonal = math.sqrt(sum((n * s) ** 2 for n, s in zip(p.shape[1:], sp)))
    pb, yb = p[None], y[None]
    with warnings.catch_warnings():  # MONAI warns about empty masks; the BraTS convention below handles them
        warnings.simplefilter("ignore")
        dice = compute_dice(pb, yb, include_background=True, ignore_empty=False)[0]
        hd95 = compute_hausdorff_distance(pb, yb, include_background=True, percentile=95, spacing=sp)[0]
        confusion = get_confusion_matrix(pb, yb, include_background=True)
        sens = compute_confusion_matrix_metric("sensitivity", confusion)[0]
        spec = compute_confusion_matrix_metric("specificity", confusion)[0]
    out: dict[str, dict[str, float | None]] = {}
    for r, name in enumerate(names):
        in_p, in_y = bool(p[r].any()), bool(y[r].any())
        d, h = float(dice[r]), float(hd95[r])
        if not in_p and not in_y:
            d, h = 1.0, 0.0
        elif in_p != in_y:
            d, h = 0.0, diagonal
        has_background = bool((y[r] == 0).any())
        out[name] = {
            "dice": _finite(d),
            "sensitivity": _finite(float(sens[r])) if in_y else None,
            "specificity": _finite(float(spec[r])) if has_background else None,
            "hd95_mm": _finite(h),
        }
    return out


def label_region_metrics(pred_label: Any, label: Any, layout: str = "brats", spacing: Sequence[float] | None = None,
                         num_regions: int | None = None) -> dict[str, dict[str, float | None]]:
    """:func:`region_case_metrics` of two label maps ``(1, *spatial)`` of a layout (``"brats"``, ``"msd"``,
    ``"generic"``), converted to their regions first."""
    from vnas_monai.data.regions import get_layout, label_to_regions

    lay = get_layout(layout, num_regions)
    return region_case_metrics(label_to_regions(pred_label, lay, where="prediction"),
                               label_to_regions(label, lay, where="label"), lay.names, spacing)


def summarize_regions(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Tables 3-4: per region and metric, ``mean`` / ``std`` (ddof 0) / ``median`` and ``n`` over the cases
    (``None`` values left out and counted in ``n_undefined``). ``records`` are :func:`region_case_metrics` outputs
    (extra keys whose value is not a per-region mapping, e.g. ``"case"``, are ignored)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for record in records:
        for region, metrics in record.items():
            if not isinstance(metrics, Mapping):
                continue
            for metric in REGION_METRICS:
                out.setdefault(region, {}).setdefault(metric, []).append(metrics.get(metric))  # type: ignore[arg-type]
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for region, metrics in out.items():
        summary[region] = {}
        for metric, values in metrics.items():
            vals = np.array([v for v in values if v is not None], dtype=float)
            summary[region][metric] = {
                "n": int(vals.size), "n_undefined": int(len(values) - vals.size),
                **{k: (float(fn(vals)) if vals.size else None)
                   for k, fn in (("mean", np.mean), ("std", np.std), ("median", np.median))},
            }
    return summary
