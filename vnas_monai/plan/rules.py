"""The rules that turn a fingerprint into a plan (nnU-Net, Isensee et al., Nature Methods 2021, and its v1 planner).

Every rule is a small pure function of fingerprint values, so that each can be tested and reused (DynUNet refits the
patch to its own divisibility with :func:`fit_patch_size`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "ANISOTROPY_THRESHOLD",
    "target_spacing",
    "resampled_shape",
    "fit_patch_size",
    "normalisation",
    "safe_flip_axes",
    "batch_plan",
    "foreground_ratio",
]

#: nnU-Net's anisotropy threshold: an axis more than 3x coarser than the others is "low resolution".
ANISOTROPY_THRESHOLD = 3.0
_LATERAL_WORDS = ("left", "right")


def target_spacing(spacings: Sequence[Sequence[float]], shapes: Sequence[Sequence[int]]) -> list[float]:
    """nnU-Net's target spacing: the per-axis median; for anisotropic data the low-resolution axis gets the 10th
    percentile of its spacings instead (nnU-Net v1 ``ExperimentPlanner3D_v21.get_target_spacing``).

    The exception applies when the coarsest median spacing is more than :data:`ANISOTROPY_THRESHOLD` times the
    finest of the other axes *and* that axis has more than 3x fewer voxels than the others at the median spacing;
    the 10th percentile is not allowed below the other axes' largest spacing.

    Args:
        spacings: per-case voxel sizes (mm), shape (N, 3).
        shapes: per-case voxel counts, shape (N, 3).

    Returns:
        3 spacings in mm.
    """
    sp = np.asarray(spacings, dtype=float)
    sh = np.asarray(shapes, dtype=float)
    if sp.ndim != 2 or sp.shape[1] != 3 or sh.shape != sp.shape or not len(sp):
        raise ValueError(f"spacings and shapes must both be (N, 3) with N >= 1, got {sp.shape} and {sh.shape}.")
    target = np.median(sp, axis=0)
    size_mm = np.median(sp * sh, axis=0)
    target_size = size_mm / target
    worst = int(np.argmax(target))
    others = [a for a in range(3) if a != worst]
    aniso_spacing = target[worst] > ANISOTROPY_THRESHOLD * max(target[others])
    aniso_voxels = target_size[worst] * ANISOTROPY_THRESHOLD < min(target_size[others])
    if aniso_spacing and aniso_voxels:
        low = float(np.percentile(sp[:, worst], 10))
        target[worst] = max(low, max(target[others]) + 1e-5) if low < max(target[others]) else low
    return [float(round(t, 6)) for t in target]


def resampled_shape(spacings: Sequence[Sequence[float]], shapes: Sequence[Sequence[int]], spacing: Sequence[float]):
    """Median case shape (voxels) after resampling to ``spacing``: ``median(shape * case_spacing / spacing)``."""
    sp, sh = np.asarray(spacings, dtype=float), np.asarray(shapes, dtype=float)
    return [int(round(v)) for v in np.median(sh * sp / np.asarray(spacing, dtype=float), axis=0)]


def fit_patch_size(
    median_shape: Sequence[int], divisible_by: int | Sequence[int], max_voxels: int = 128**3
) -> list[int]:
    """Patch size fitted to the median (resampled) shape and to a network's divisibility.

    Each axis is rounded to the *nearest* multiple of its divisor (at least one multiple): a patch a little smaller
    than a small volume is cropped at random positions (translation augmentation, cheaper steps) and a little larger
    one is padded; nnU-Net likewise starts from the median shape. While the patch exceeds ``max_voxels`` the largest
    axis (in voxels) is shrunk by one divisor, as nnU-Net shrinks its patch to its memory target.

    Args:
        median_shape: median case shape in voxels after resampling, 3 ints.
        divisible_by: the network's total down-sampling factor, one int or one per axis (MONAI ``UNet`` with 4
            stride-2 levels: 16; V-NAS: 32; ``DynUNet``: the product of its strides per axis).
        max_voxels: upper bound on the patch's number of voxels.

    Returns:
        3 ints, each a positive multiple of its divisor.
    """
    div = [int(divisible_by)] * 3 if isinstance(divisible_by, (int, np.integer)) else [int(d) for d in divisible_by]
    if len(div) != 3 or min(div) < 1 or len(median_shape) != 3 or min(median_shape) < 1:
        raise ValueError(
            f"median_shape and divisible_by must give 3 positive values, got {median_shape} and {divisible_by}."
        )
    patch = [max(d, int(math.floor(s / d + 0.5)) * d) for s, d in zip(median_shape, div)]
    while math.prod(patch) > max_voxels:
        axis = max((a for a in range(3) if patch[a] > div[a]), key=lambda a: patch[a], default=None)
        if axis is None:
            break
        patch[axis] -= div[axis]
    return patch


def normalisation(modality: str, foreground: dict[str, float]) -> dict[str, Any]:
    """nnU-Net's intensity normalisation scheme by modality.

    CT: clip to the foreground 0.5 / 99.5 percentiles, then subtract the dataset's foreground mean and divide by its
    foreground standard deviation (global statistics: Hounsfield units mean the same in every case). Every other
    modality (MRI, ...): z-score each case by its own mean and standard deviation.

    Args:
        modality: ``dataset.json``'s modality (``"CT"`` selects the CT scheme, case-insensitive).
        foreground: the fingerprint's ``foreground_intensity`` (``mean``, ``std``, ``percentile_00_5``,
            ``percentile_99_5``).
    """
    if str(modality).upper() == "CT":
        return {
            "mode": "ct",
            "clip": [float(foreground["percentile_00_5"]), float(foreground["percentile_99_5"])],
            "mean": float(foreground["mean"]),
            "std": float(max(foreground["std"], 1e-8)),
        }
    return {"mode": "zscore", "clip": None, "mean": None, "std": None}


def safe_flip_axes(
    centroids_mm: Sequence[Sequence[Sequence[float] | None]],
    spreads_mm: Sequence[Sequence[Sequence[float] | None]],
    class_names: Sequence[str],
    spacing: Sequence[float],
    min_shift_voxels: float = 2.0,
    min_separation: float = 1.0,
    min_agreement: float = 0.8,
) -> tuple[list[int], dict[str, Any]]:
    """The axes along which a random flip does not swap labelled sides.

    A flip along an axis mirrors the relative position of two classes along it. If the classes' centroids are
    consistently ordered along an axis (e.g. hippocampus *Anterior* before *Posterior*, or a left and a right kidney),
    a flipped training case shows an anatomy that never occurs, with the classes' roles swapped: that axis is not safe.
    An axis is unsafe when, for some pair of foreground classes present together, the median centroid offset along it
    is at least ``min_shift_voxels`` voxels and at least ``min_separation`` times the classes' own spread along it
    (the mean standard deviation of their voxel positions: the classes lie one after the other, not side by side),
    and at least ``min_agreement`` of the cases agree on its sign. A flip along an axis where the classes overlap
    (the hippocampus' left-right axis: a 2 mm offset against a 3-4 mm spread) turns a left structure into a
    plausible right one and keeps the classes' roles. Class names
    that contain "left" or "right" also make the left-right axis (RAS axis 0) unsafe. With a single foreground class
    every axis is safe (nnU-Net mirrors along all axes).

    Args:
        centroids_mm: per case, per foreground class, the centroid (mm, RAS axes) or ``None`` when absent.
        spreads_mm: the same layout: standard deviation of the class's voxel positions (mm) per axis.
        class_names: all class names, background first.
        spacing: target spacing (mm), which converts ``min_shift_voxels`` to mm.
        min_shift_voxels: offset (in target voxels) below which centroids are considered equal along an axis.
        min_separation: offset in units of the classes' mean spread.
        min_agreement: fraction of cases whose offset has the median's sign.

    Returns:
        ``(axes, evidence)``: the safe axes (sorted) and, per unsafe axis (as a string key), the reasons.
    """
    num_fg = len(class_names) - 1
    evidence: dict[str, list[Any]] = {}
    unsafe: set[int] = set()
    if any(w in str(n).lower() for n in class_names[1:] for w in _LATERAL_WORDS):
        unsafe.add(0)
        evidence["0"] = ["class names mention left/right"]
    for i in range(num_fg):
        for j in range(i + 1, num_fg):
            both = [k for k, c in enumerate(centroids_mm) if c[i] is not None and c[j] is not None]
            if not both:
                continue
            d = np.array([np.subtract(centroids_mm[k][i], centroids_mm[k][j]) for k in both])
            spread = np.array([np.add(spreads_mm[k][i], spreads_mm[k][j]) / 2 for k in both])
            for axis in range(3):
                med = float(np.median(d[:, axis]))
                sep = abs(med) / max(float(np.median(spread[:, axis])), 1e-6)
                agree = float(np.mean(np.sign(d[:, axis]) == np.sign(med))) if med else 0.0
                shifted = abs(med) >= min_shift_voxels * float(spacing[axis]) and sep >= min_separation
                if shifted and agree >= min_agreement:
                    unsafe.add(axis)
                    evidence.setdefault(str(axis), []).append({
                        "classes": [class_names[i + 1], class_names[j + 1]],
                        "median_offset_mm": round(med, 2),
                        "separation": round(sep, 2),
                        "sign_agreement": round(agree, 3),
                        "num_cases": int(len(d)),
                    })
    return sorted(set(range(3)) - unsafe), evidence


def batch_plan(
    patch_size: Sequence[int],
    bytes_per_voxel: float,
    memory_budget_mb: float,
    dataset_voxels: float,
    max_patches: int = 8,
    min_patches: int = 2,
) -> dict[str, int]:
    """Batch size and samples per case within a memory budget (nnU-Net: batch >= 2, and one batch covers at most 5 %
    of the dataset's voxels).

    Args:
        patch_size: 3 ints.
        bytes_per_voxel: training memory per input voxel of the network (activations and their gradients).
        memory_budget_mb: memory one training step may use.
        dataset_voxels: total voxels of the (resampled) training cases.
        max_patches, min_patches: bounds on the patches per step.

    Returns:
        ``{"patches_per_step", "batch_size", "num_samples"}``: ``batch_size`` cases per step, ``num_samples`` crops
        from each (``RandCropByPosNegLabeld``), ``batch_size * num_samples = patches_per_step``.
    """
    voxels = math.prod(int(p) for p in patch_size)
    fit = int(memory_budget_mb * 2**20 // (bytes_per_voxel * voxels))
    cover = int(0.05 * dataset_voxels // voxels)
    patches = max(min_patches, min(max_patches, fit, cover))
    num_samples = 2 if patches % 2 == 0 else 1
    return {"patches_per_step": patches, "batch_size": patches // num_samples, "num_samples": num_samples}


def foreground_ratio(class_fraction: Sequence[float], rare: float = 0.01) -> dict[str, Any]:
    """Foreground oversampling: the share of crops centred on a labelled voxel (``RandCropByPosNegLabeld``).

    nnU-Net forces a third of its patches to contain foreground; when the smallest class covers less than ``rare`` of
    a case's voxels (small organs, tumours) half of the crops are centred on foreground instead.

    Returns:
        ``{"ratio", "pos", "neg"}``.
    """
    small = min(class_fraction) if len(class_fraction) else 0.0
    return {"ratio": 0.5, "pos": 1, "neg": 1} if small < rare else {"ratio": 1 / 3, "pos": 1, "neg": 2}
