"""The cases a stage reads and how its outputs are named: fold splits, inference and evaluation datalists, case
names (NIfTI file stems, NIH patient folders for DICOM series)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vnas_monai.data.datalist import NIFTI_RE, PATIENT_RE

__all__ = [
    "case_name", "case_name_formatter", "evaluation_datalist", "fold_splits", "inference_datalist", "scan_image_dir"
]

_IMAGE_EXT_RE = re.compile(r"\.(nii\.gz|nii|nrrd|mha|mhd|dcm)$", re.IGNORECASE)


def fold_splits(
    dataset_dir: str | os.PathLike | None,
    phantom_dir: str | os.PathLike,
    fold: int = 0,
    num_folds: int = 4,
    seed: int = 0,
    datalist_file: str | os.PathLike | None = None,
    layout: str = "auto",
    max_cases: int | None = None,
    phantom_cases: int = 12,
    num_classes: int = 2,
) -> dict[str, list[dict[str, Any]]]:
    """``fold_datalists`` of the bundles' ``splits`` key, with the synthetic phantoms in ``phantom_dir`` when no
    ``dataset_dir`` is given (the search's folder, so that every stage of a demo sees the same cases)."""
    from vnas_monai.data import fold_datalists, resolve_dataset_dir

    root = resolve_dataset_dir(dataset_dir, phantom_dir, num_cases=phantom_cases, num_classes=num_classes)
    return fold_datalists(
        root, fold=fold, num_folds=num_folds, seed=seed, datalist_file=datalist_file, layout=layout,
        max_cases=max_cases,
    )


def _is_dicom_dir(path: Path) -> bool:
    return path.is_dir() and any(f.is_file() and not f.name.startswith(".") for f in path.iterdir())


def scan_image_dir(input_dir: str | os.PathLike, field: str = "input_dir") -> list[str]:
    """Images in a folder: NIfTI (and other ITK) files, and DICOM series folders (folders holding files).

    ``field`` names the config key in errors.
    """
    root = Path(input_dir).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{field} {root} {'is not a folder' if root.exists() else 'does not exist'}.")
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        files = sorted(f for f in filenames if not f.startswith("."))
        images = [f for f in files if _IMAGE_EXT_RE.search(f) and not f.lower().endswith(".dcm")]
        found += [os.path.join(dirpath, f) for f in images]
        is_root = Path(dirpath) == root
        if len(images) < len(files) and (not is_root or not (images or dirnames)):
            found.append(dirpath)  # a folder of other files (DICOM slices, any name) is a series
            dirnames[:] = []
    if not found:
        raise ValueError(f"{field} {root} holds no image (NIfTI/ITK file) and no DICOM series folder.")
    return sorted(found)


def inference_datalist(
    images: str | os.PathLike | Sequence[Any] | None = None,
    input_dir: str | os.PathLike | None = None,
    splits: Any = None,
    split: str = "test",
) -> list[dict[str, str]]:
    """The images the inference bundle segments, as ``[{"image": path}, ...]`` (labels dropped).

    Exactly one source is used, in this order: ``images`` (a path or a list of paths / ``{"image": ...}`` dicts; a
    path may be a NIfTI file or a DICOM series folder), ``input_dir`` (every NIfTI file and DICOM series folder below
    it), else ``splits`` (a callable returning the fold's splits, called only then) at ``split``.

    Raises:
        FileNotFoundError: a listed image or ``input_dir`` does not exist (named).
        ValueError: no image, or two images that would write the same ``<case>_seg.nii.gz`` (both named).
    """
    if images not in (None, "", []):
        items = [images] if isinstance(images, (str, os.PathLike, Mapping)) else list(images)
        paths = [str(i["image"]) if isinstance(i, Mapping) else str(i) for i in items]
        source = "images"
    elif input_dir not in (None, ""):
        paths, source = scan_image_dir(input_dir), f"input_dir {input_dir}"
    else:
        if splits is None:
            raise ValueError("no images to segment: pass images=..., input_dir=... or a dataset_dir with folds.")
        data = splits() if callable(splits) else splits
        if split not in data:
            raise ValueError(f"splits have no {split!r} set (have {sorted(data)}).")
        paths, source = [str(c["image"]) for c in data[split]], f"the fold's S_{split}"
    if not paths:
        raise ValueError(f"no images to segment in {source} (with num_folds=1 there is no S_test: pass --images).")
    out, names = [], {}
    for p in paths:
        path = Path(p).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"image {path} (from {source}) does not exist.")
        name = case_name(path)
        if name in names:
            raise ValueError(f"images {names[name]} and {path} would both be written as case {name!r}; rename one.")
        names[name] = path
        out.append({"image": os.path.abspath(path)})
    return out


def evaluation_datalist(splits: Mapping[str, Any], split: str = "test") -> list[dict[str, Any]]:
    """The labelled cases of ``splits[split]`` for the evaluation bundle.

    Raises:
        ValueError: an unknown split, an empty one (``num_folds=1`` has no S_test), or a case without a label.
    """
    if split not in splits:
        raise ValueError(f"eval_split {split!r} is not one of the fold's sets {sorted(splits)}.")
    cases = [dict(c) for c in splits[split]]
    if not cases:
        raise ValueError(
            f"the fold's S_{split} is empty (with num_folds=1 every case is in S_train/S_val): evaluate with "
            "num_folds >= 2 or --eval_split val."
        )
    for c in cases:
        if not c.get("label"):
            raise ValueError(f"case {c.get('image')} of S_{split} has no label: evaluation needs labels.")
    return cases


def case_name(path: str | os.PathLike) -> str:
    """Case name of an input image: a NIfTI/ITK file's name without extension; for a DICOM series folder (or a DICOM
    file), the NIH patient folder (``PANCREAS_0001``) above it if there is one, else the series folder's name."""
    path = Path(str(path))
    if NIFTI_RE.search(path.name) or (_IMAGE_EXT_RE.search(path.name) and not path.name.lower().endswith(".dcm")):
        return _IMAGE_EXT_RE.sub("", path.name)
    folder = path.parent if path.name.lower().endswith(".dcm") else path
    for part in (folder, *folder.parents):
        if PATIENT_RE.match(part.name):
            return part.name
    return folder.name


def case_name_formatter(metadict: Mapping[str, Any], saver: Any = None) -> dict[str, Any]:
    """``SaveImaged(output_name_formatter=...)``: name outputs by :func:`case_name` of the source image, so that
    DICOM series write ``<output_dir>/PANCREAS_0001/PANCREAS_0001_seg.nii.gz`` rather than by series UID folder."""
    source = metadict.get("filename_or_obj", "") if metadict else ""
    if isinstance(source, (list, tuple)):
        source = source[0] if source else ""
    index = metadict.get("patch_index") if metadict else None
    return {"subject": case_name(source) if source else "case", "idx": index}
