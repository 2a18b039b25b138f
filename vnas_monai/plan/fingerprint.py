"""Dataset fingerprint: MONAI Auto3DSeg's ``DataAnalyzer`` statistics plus the class centroids a flip rule needs.

The fingerprint is what nnU-Net calls the "dataset fingerprint" (Isensee et al., Nature Methods 2021, §Methods):
per-case voxel spacings and shapes, foreground intensity statistics and class sizes, and the modality from
``dataset.json``. MONAI's analyser (``monai.apps.auto3dseg.DataAnalyzer``) computes all of them after its own
``LoadImaged`` + ``EnsureChannelFirstd`` + ``Orientationd("RAS")``, i.e. on the grid the training pipeline
(``Orientationd("RAS")``) sees; it needs no network access and analyses the 260 hippocampus cases in about 12 s on
one CPU thread. The class centroids (mm, RAS axes) are read here from the label files with nibabel, reoriented to
the closest canonical (RAS) grid like ``Orientationd``.

Datasets with more than ``max_cases`` cases are analysed on a seeded subset (logged, and recorded in the fingerprint).
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["fingerprint", "dataset_meta"]

logger = logging.getLogger(__name__)

#: Default number of cases analysed; larger datasets are analysed on a seeded subset of this size.
MAX_CASES = 300


def dataset_meta(dataset_dir: str | Path) -> dict[str, Any]:
    """Modality and class names of a dataset: ``dataset.json``'s ``modality`` and ``labels`` (MSD layout).

    Args:
        dataset_dir: the dataset folder.

    Returns:
        ``{"modality": "CT" | "MRI" | ..., "class_names": [...] | None}``; a dataset without ``dataset.json`` (NIH
        Pancreas-CT layout) is CT with unnamed classes.

    Raises:
        ValueError: ``dataset.json`` is not valid JSON or its ``labels`` / ``modality`` are malformed (names the file).
    """
    path = Path(dataset_dir) / "dataset.json"
    if not path.is_file():
        return {"modality": "CT", "class_names": None}
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from e
    modality = meta.get("modality", {"0": "CT"})
    if isinstance(modality, Mapping):
        modality = modality.get("0", next(iter(modality.values()), "CT"))
    if not isinstance(modality, str):
        raise ValueError(f"{path}: 'modality' must be a string or {{'0': name}}, got {meta.get('modality')!r}.")
    labels = meta.get("labels")
    names = None
    if labels is not None:
        if not isinstance(labels, Mapping) or not all(str(k).isdigit() for k in labels):
            raise ValueError(f"{path}: 'labels' must map label values to names, got {labels!r}.")
        values = sorted(int(k) for k in labels)
        if values != list(range(len(values))):
            raise ValueError(f"{path}: 'labels' must be 0 .. n-1 without gaps, got values {values}.")
        names = [str(labels[str(v)]) for v in values]
    return {"modality": modality.upper() if modality.upper() in ("CT", "MRI", "MR") else modality, "class_names": names}


def _centroids(label_path: str, num_classes: int) -> tuple[list[Any], list[int]]:
    """Per-class centroid and spread (standard deviation of the voxel positions), both in mm along the RAS-canonical
    voxel axes, and voxel count of one label file: ``([[centroid, spread] | None, ...], [count, ...])``."""
    import nibabel as nib

    img = nib.as_closest_canonical(nib.load(label_path))
    seg = np.asarray(img.dataobj).astype(np.int64)
    seg = seg[..., 0] if seg.ndim == 4 else seg
    zooms = np.asarray(img.header.get_zooms()[:3], dtype=float)
    out: list[list[float] | None] = []
    counts = []
    for c in range(1, num_classes):
        idx = np.argwhere(seg == c)
        counts.append(int(idx.shape[0]))
        out.append([(idx.mean(0) * zooms).tolist(), (idx.std(0) * zooms).tolist()] if idx.size else None)
    return out, counts


def _culprit(cases: Sequence[Mapping[str, Any]]) -> str | None:
    """The first image or label that MONAI cannot load, and why (only called after the analyser failed)."""
    from monai.transforms import LoadImage

    loader = LoadImage(image_only=True)
    for case in cases:
        for key in ("image", "label"):
            try:
                loader(case[key])
            except Exception as e:
                cause = str(e.__cause__ or e).strip().splitlines()
                return f"{key} {case[key]} cannot be read: {cause[-1] if cause else type(e).__name__}"
    return None


def _subset(cases: Sequence[Mapping[str, Any]], max_cases: int | None, seed: int) -> list[dict[str, Any]]:
    cases = [dict(c) for c in cases]
    if max_cases is None or len(cases) <= max_cases:
        return cases
    order = sorted(range(len(cases)), key=lambda i: cases[i]["image"])
    random.Random(f"vnas-plan-{seed}").shuffle(order)
    logger.warning("fingerprint: analysing a seeded subset of %d of %d cases (seed %d)", max_cases, len(cases), seed)
    return [cases[i] for i in sorted(order[:max_cases])]


def _first(x: Any) -> Any:
    """DataAnalyzer wraps per-channel values in a list: ``[[35, 51, 35]]`` -> ``[35, 51, 35]``."""
    return x[0] if isinstance(x, list) and x and isinstance(x[0], (list, dict)) else x


def fingerprint(
    cases: Sequence[Mapping[str, Any]],
    dataset_dir: str | Path,
    max_cases: int | None = MAX_CASES,
    seed: int = 0,
) -> dict[str, Any]:
    """Fingerprint of a list of labelled cases with MONAI's ``DataAnalyzer`` (CPU, no output files).

    Args:
        cases: ``[{"image": path, "label": path}, ...]`` (absolute paths), e.g. the ``trainval`` cases of a fold, so
            that the held-out cases do not influence the plan.
        dataset_dir: the dataset folder (its ``dataset.json`` gives modality and class names).
        max_cases: analyse at most this many cases (a seeded subset); ``None`` analyses all.
        seed: seed of the subset.

    Returns:
        A JSON-serialisable dict: ``modality``, ``class_names``, ``num_cases`` / ``num_analysed``, per-case
        ``spacings`` and ``shapes`` (RAS axes), ``foreground_intensity`` (mean, std, percentile_00_5, percentile_99_5
        pooled over cases), ``class_fraction`` (median fraction of a case's voxels per foreground class) and
        ``centroids_mm`` and ``spreads_mm`` (per case, per foreground class, RAS axes: mean and standard deviation of
        the class's voxel positions; ``None`` where a class is absent).

    Raises:
        ValueError: no cases, or an image whose analysis fails (the message names the file).
    """
    from monai.apps.auto3dseg import DataAnalyzer

    if not cases:
        raise ValueError(f"fingerprint: no cases to analyse in dataset_dir {dataset_dir}.")
    meta = dataset_meta(dataset_dir)
    chosen = _subset(cases, max_cases, seed)
    datalist = {"training": [{"image": c["image"], "label": c["label"], "fold": 0} for c in chosen]}
    analyser = DataAnalyzer(datalist, dataroot="", output_path="", device="cpu", worker=0, hist_bins=0)
    try:
        stats = analyser.get_all_case_stats()
    except Exception as e:  # MONAI names neither the file nor the cause: find the file that does not load
        raise ValueError(f"fingerprint of {dataset_dir}: {_culprit(chosen) or e}") from e
    by_case = stats["stats_by_cases"]
    summary = stats["stats_summary"]
    labels = [int(v) for v in summary["label_stats"]["labels"]]
    num_classes = max(labels) + 1 if meta["class_names"] is None else len(meta["class_names"])
    class_names = meta["class_names"] or ["background"] + [f"class{c}" for c in range(1, num_classes)]
    spacings = [[float(s) for s in _first(c["image_stats"]["spacing"])] for c in by_case]
    shapes = [[int(s) for s in _first(c["image_stats"]["shape"])] for c in by_case]
    fg = [_first(c["image_foreground_stats"]["intensity"]) for c in by_case]
    fractions = []
    for c in by_case:
        ls = c["label_stats"]
        per = {int(v): lab["foreground_percentage"] for v, lab in zip(ls["labels"], ls["label"])}
        fractions.append([float(per.get(k, 0.0)) for k in range(1, num_classes)])
    centroids, counts = zip(*(_centroids(c["label"], num_classes) for c in chosen))
    means = np.array([f["mean"] for f in fg], dtype=float)
    stds = np.array([f["stdev"] for f in fg], dtype=float)
    pooled_std = math.sqrt(float(np.mean(stds**2) + np.var(means)))  # law of total variance (equal case weights)
    return {
        "analyser": "monai.apps.auto3dseg.DataAnalyzer",
        "modality": meta["modality"],
        "class_names": class_names,
        "num_cases": len(cases),
        "num_analysed": len(chosen),
        "subset_seed": seed if len(chosen) < len(cases) else None,
        "cases": [c["image"] for c in chosen],
        "spacings": spacings,
        "shapes": shapes,
        "foreground_intensity": {
            "mean": float(means.mean()),
            "std": pooled_std,
            "percentile_00_5": float(np.mean([f["percentile_00_5"] for f in fg])),
            "percentile_99_5": float(np.mean([f["percentile_99_5"] for f in fg])),
        },
        "class_fraction": [float(v) for v in np.median(np.array(fractions), axis=0)],
        "class_voxels": [list(c) for c in counts],
        "centroids_mm": [[c[0] if c else None for c in case] for case in centroids],
        "spreads_mm": [[c[1] if c else None for c in case] for case in centroids],
    }
