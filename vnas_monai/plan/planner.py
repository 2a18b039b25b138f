"""A training plan derived from a dataset fingerprint, its JSON file, and the bundle overrides it implies.

A plan is a plain JSON-serialisable dict (``version`` :data:`PLAN_VERSION`)::

    {"version": 1, "dataset_dir": ..., "modality": "MRI", "class_names": [...],
     "spacing": [sx, sy, sz],                      # target spacing (mm, RAS axes)
     "median_shape": [x, y, z],                    # median case shape after resampling (voxels)
     "divisible_by": 16, "patch_size": [x, y, z],  # patch fitted to median_shape and divisible_by
     "normalisation": {"mode": "ct" | "zscore", "clip": [lo, hi] | None, "mean": m | None, "std": s | None},
     "flip_axes": [...], "flip_evidence": {...},
     "batch_size": b, "num_samples": n, "patches_per_step": b * n,
     "foreground": {"ratio": r, "pos": p, "neg": q},
     "fingerprint": {... summary ...}}
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vnas_monai.io import atomic_write_text

from . import rules

__all__ = ["PLAN_VERSION", "make_plan", "plan_overrides", "write_plan", "load_plan"]

logger = logging.getLogger(__name__)

PLAN_VERSION = 1
_REQUIRED = ("spacing", "patch_size", "normalisation", "flip_axes", "batch_size", "num_samples", "foreground",
             "class_names", "modality")


def make_plan(
    fp: Mapping[str, Any],
    divisible_by: int | Sequence[int] = 16,
    memory_budget_mb: float = 4096.0,
    bytes_per_voxel: float = 2048.0,
    max_patch_voxels: int = 128**3,
    dataset_dir: str | None = None,
) -> dict[str, Any]:
    """Derive a plan from a fingerprint (:func:`vnas_monai.plan.fingerprint`).

    Args:
        fp: the fingerprint.
        divisible_by: the network's total down-sampling factor (MONAI ``UNet`` with 4 stride-2 levels: 16; V-NAS: 32).
        memory_budget_mb: memory one training step may use (sets ``batch_size`` x ``num_samples``).
        bytes_per_voxel: training memory per patch voxel of the network (the default suits MONAI's ``UNet`` 16..256
            with 2 residual units in fp32: about 2 KB of activations and gradients per input voxel).
        max_patch_voxels: upper bound on the patch volume.
        dataset_dir: recorded in the plan.

    Returns:
        The plan dict (see the module docstring).
    """
    spacing = rules.target_spacing(fp["spacings"], fp["shapes"])
    median = rules.resampled_shape(fp["spacings"], fp["shapes"], spacing)
    patch = rules.fit_patch_size(median, divisible_by, max_patch_voxels)
    flips, evidence = rules.safe_flip_axes(fp["centroids_mm"], fp["spreads_mm"], fp["class_names"], spacing)
    sp, sh = np.asarray(fp["spacings"], dtype=float), np.asarray(fp["shapes"], dtype=float)
    dataset_voxels = float(np.sum(np.prod(sh * sp / np.asarray(spacing), axis=1))) * fp["num_cases"] / len(sp)
    batch = rules.batch_plan(patch, bytes_per_voxel, memory_budget_mb, dataset_voxels)
    return {
        "version": PLAN_VERSION,
        "dataset_dir": dataset_dir,
        "modality": fp["modality"],
        "class_names": list(fp["class_names"]),
        "spacing": spacing,
        "median_shape": median,
        "divisible_by": divisible_by if isinstance(divisible_by, int) else list(divisible_by),
        "patch_size": patch,
        "normalisation": rules.normalisation(fp["modality"], fp["foreground_intensity"]),
        "flip_axes": flips,
        "flip_evidence": evidence,
        **batch,
        "foreground": rules.foreground_ratio(fp["class_fraction"]),
        "memory": {"budget_mb": memory_budget_mb, "bytes_per_voxel": bytes_per_voxel},
        "fingerprint": {
            "analyser": fp["analyser"],
            "num_cases": fp["num_cases"],
            "num_analysed": fp["num_analysed"],
            "subset_seed": fp["subset_seed"],
            "median_spacing": [float(v) for v in np.median(sp, axis=0)],
            "median_native_shape": [int(v) for v in np.median(sh, axis=0)],
            "foreground_intensity": dict(fp["foreground_intensity"]),
            "class_fraction": list(fp["class_fraction"]),
        },
    }


def plan_overrides(plan: Mapping[str, Any]) -> dict[str, Any]:
    """The bundle config overrides a plan implies (keys of ``bundles/*/train.json`` and ``search.json``).

    ``roi_size``, ``spacing``, ``intensity_clip`` (``None`` for MRI), ``flip_axes``, ``batch_size``,
    ``num_samples``, plus ``normalisation`` (``"ct"``: subtract ``intensity_mean`` and divide by ``intensity_std``,
    the dataset's foreground statistics; ``"zscore"``: each case by its own statistics, MONAI's
    ``NormalizeIntensityd()``), ``pos`` / ``neg`` of ``RandCropByPosNegLabeld`` and ``class_names``.

    Raises:
        ValueError: the plan lacks a key (the message names it).
    """
    check_plan(plan, "plan")
    norm = plan["normalisation"]
    return {
        "roi_size": list(plan["patch_size"]),
        "spacing": list(plan["spacing"]),
        "intensity_clip": list(norm["clip"]) if norm["clip"] is not None else None,
        "normalisation": norm["mode"],
        "intensity_mean": norm["mean"],
        "intensity_std": norm["std"],
        "flip_axes": list(plan["flip_axes"]),
        "batch_size": int(plan["batch_size"]),
        "num_samples": int(plan["num_samples"]),
        "pos": int(plan["foreground"]["pos"]),
        "neg": int(plan["foreground"]["neg"]),
        "class_names": list(plan["class_names"]),
    }


def check_plan(plan: Any, source: str) -> Mapping[str, Any]:
    """Raise ``ValueError`` naming ``source`` and the key when ``plan`` is not a plan of this version."""
    if not isinstance(plan, Mapping):
        raise ValueError(f"{source} is not a plan: expected a JSON object, got {type(plan).__name__}.")
    if plan.get("version") != PLAN_VERSION:
        raise ValueError(f"{source}: plan 'version' must be {PLAN_VERSION}, got {plan.get('version')!r}.")
    for key in _REQUIRED:
        if key not in plan:
            raise ValueError(f"{source}: plan lacks the key '{key}'.")
    for key in ("spacing", "patch_size"):
        v = plan[key]
        if not isinstance(v, list) or len(v) != 3 or not all(isinstance(x, (int, float)) and x > 0 for x in v):
            raise ValueError(f"{source}: plan '{key}' must be 3 positive numbers, got {v!r}.")
    if not all(isinstance(a, int) and 0 <= a < 3 for a in plan["flip_axes"]):
        raise ValueError(f"{source}: plan 'flip_axes' must be axes in 0..2, got {plan['flip_axes']!r}.")
    if plan["normalisation"].get("mode") not in ("ct", "zscore"):
        raise ValueError(f"{source}: plan 'normalisation.mode' must be 'ct' or 'zscore'.")
    return plan


def write_plan(plan: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write a plan as JSON, atomically; returns the path."""
    path = Path(path)
    atomic_write_text(path, json.dumps(check_plan(plan, "plan to write"), indent=1) + "\n")
    return path


def load_plan(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check a plan file.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not JSON or not a plan (the message names the file and key).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"plan file {path} does not exist.")
    try:
        plan = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"plan file {path} is not valid JSON: {e}") from e
    return dict(check_plan(plan, f"plan file {path}"))


def describe(plan: Mapping[str, Any]) -> str:
    """One-line summary of a plan for logs."""
    n = plan["normalisation"]
    norm = n["mode"] if n["clip"] is None else f"{n['mode']} clip [{n['clip'][0]:.0f}, {n['clip'][1]:.0f}]"
    return (
        f"{plan['modality']}: spacing {plan['spacing']} mm, median shape {plan['median_shape']}, patch "
        f"{plan['patch_size']} (/{plan['divisible_by']}), {norm}, flips {plan['flip_axes']}, batch "
        f"{plan['batch_size']} x {plan['num_samples']} samples, foreground ratio {plan['foreground']['ratio']:.2f} "
        f"({math.prod(plan['patch_size'])} voxels/patch)"
    )
