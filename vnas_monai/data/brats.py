"""Datalists of the BraTS folder layout (BraTS 2019-2021; Wang, BraTS 2019, §3.1).

A BraTS dataset holds one folder per case, possibly grouped (BraTS 2019: ``HGG/`` and ``LGG/``), each with one NIfTI
file per modality and the segmentation, named after the folder::

    <root>/[HGG/]<case>/<case>_t1.nii.gz, <case>_t1ce.nii.gz, <case>_t2.nii.gz, <case>_flair.nii.gz, <case>_seg.nii.gz

:func:`load_brats_datalist` lists them as ``{"image": [t1, t1ce, t2, flair], "label": seg, "case": <case>}`` (the
image list in ``modalities`` order: MONAI's ``LoadImaged`` stacks it into ``(4, *spatial)`` with
``EnsureChannelFirstd``), sorted by case name. Labels are BraTS's 1 / 2 / 4 (:mod:`vnas_monai.data.regions`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["BRATS_MODALITIES", "load_brats_datalist"]

#: The modalities of a BraTS case, in the channel order of the datalists here.
BRATS_MODALITIES: tuple[str, ...] = ("t1", "t1ce", "t2", "flair")
_SUFFIXES = (".nii.gz", ".nii")


def _find(folder: Path, case: str, key: str) -> Path | None:
    for suffix in _SUFFIXES:
        path = folder / f"{case}_{key}{suffix}"
        if path.is_file():
            return path
    return None


def _case_folders(root: Path, keys: Sequence[str]) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        name = os.path.basename(dirpath)
        if any(f == f"{name}_{k}{s}" for f in filenames for k in keys for s in _SUFFIXES):
            found.append(Path(dirpath))
    return found


def load_brats_datalist(dataset_dir: str | os.PathLike, modalities: Sequence[str] = BRATS_MODALITIES,
                        label: str | None = "seg") -> list[dict[str, Any]]:
    """The cases of a BraTS folder (module docstring), absolute paths.

    Args:
        dataset_dir: the dataset folder (e.g. ``MICCAI_BraTS_2019_Data_Training``).
        modalities: the modality suffixes, in channel order.
        label: the segmentation suffix; ``None`` for a dataset without labels (the BraTS validation data), then
            the entries have no ``"label"``.

    Raises:
        FileNotFoundError: ``dataset_dir`` does not exist, or a case folder lacks a modality or its segmentation
            (the message names the folder and the missing file names).
        ValueError: no case folder below ``dataset_dir``.
    """
    root = Path(dataset_dir).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"BraTS dataset_dir {root} does not exist or is not a folder.")
    mods = [str(m) for m in modalities]
    if not mods:
        raise ValueError("load_brats_datalist: modalities is empty.")
    keys = mods + ([label] if label else [])
    folders = _case_folders(root.resolve(), keys)
    if not folders:
        raise ValueError(f"no BraTS case folder below {root}: expected folders <case>/ holding "
                         f"<case>_{{{','.join(keys)}}}.nii.gz (BraTS 2019-2021 layout).")
    cases = []
    for folder in sorted(folders, key=lambda p: p.name):
        case = folder.name
        paths = {k: _find(folder, case, k) for k in keys}
        missing = [f"{case}_{k}.nii.gz" for k, p in paths.items() if p is None]
        if missing:
            raise FileNotFoundError(f"BraTS case folder {folder} lacks {', '.join(missing)} (each case needs "
                                    f"{', '.join(f'{case}_{k}' for k in keys)}).")
        entry: dict[str, Any] = {"image": [str(paths[m]) for m in mods], "case": case}
        if label:
            entry["label"] = str(paths[label])
        cases.append(entry)
    names = [c["case"] for c in cases]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"BraTS dataset_dir {root} holds case folders of the same name in several places: {dupes}.")
    return cases
