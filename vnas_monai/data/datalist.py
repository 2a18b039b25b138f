"""Datalists (``[{"image": ..., "label": ...}, ...]``) of the datasets V-NAS is evaluated on, in published layouts.

Two layouts are read:

* ``"msd"``: the Medical Segmentation Decathlon layout: ``dataset.json`` with a ``"training"`` list of
  ``{"image": "./imagesTr/x.nii.gz", "label": "./labelsTr/x.nii.gz"}`` (relative to the dataset folder, or absolute).
* ``"nih"``: NIH Pancreas-CT as TCIA publishes it: one DICOM series per patient
  (``[<manifest>/]Pancreas-CT/PANCREAS_0001/<study>/<series>/*.dcm``, or ``PANCREAS_0001/...`` directly under the
  dataset folder) and the labels ``label0001.nii.gz`` anywhere below the dataset folder (TCIA ships them in
  ``TCIA_pancreas_labels-02-05-2017/``). The image entry of a case is the series folder, which MONAI's
  ``LoadImaged(reader="ITKReader")`` reads as one volume. A patient given as a converted NIfTI file
  (``PANCREAS_0001.nii.gz``) is accepted too.

Every path returned is absolute, and cases are sorted by image path so that the order (and therefore every seeded
split made from it) does not depend on the file system or on the order of ``dataset.json``.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["load_datalist", "detect_layout", "check_pairs", "LAYOUTS"]

logger = logging.getLogger(__name__)

#: Layout names accepted by :func:`load_datalist`.
LAYOUTS: tuple[str, ...] = ("auto", "msd", "nih")
#: Folder in which TCIA ships the NIH Pancreas-CT labels; named in "label not found" errors.
NIH_LABEL_FOLDER = "TCIA_pancreas_labels-02-05-2017"

#: an NIH patient folder (or NIfTI) name, ``PANCREAS_0001``; group 1 is the number
PATIENT_RE = re.compile(r"^pancreas_(\d+)(\.nii(\.gz)?)?$", re.IGNORECASE)
_LABEL_RE = re.compile(r"^label(\d+)\.nii(\.gz)?$", re.IGNORECASE)
NIFTI_RE = re.compile(r"\.nii(\.gz)?$", re.IGNORECASE)


def _existing_dir(dataset_dir: str | os.PathLike) -> Path:
    if dataset_dir is None or str(dataset_dir) == "":
        raise FileNotFoundError("dataset_dir is empty: give the folder holding the dataset.")
    path = Path(dataset_dir).expanduser()
    if not path.is_dir():
        what = "is not a folder" if path.exists() else "does not exist"
        raise FileNotFoundError(f"dataset_dir {path} {what}")
    return Path(os.path.abspath(path))


def _walk(root: Path) -> Iterable[tuple[Path, list[str], list[str]]]:
    """``os.walk`` in sorted order, skipping hidden entries (``.git``, macOS ``._*`` files, temporary folders)."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        yield Path(dirpath), dirnames, sorted(f for f in filenames if not f.startswith("."))


def _is_nifti(path: str | os.PathLike) -> bool:
    return bool(NIFTI_RE.search(str(path)))


def detect_layout(dataset_dir: str | os.PathLike) -> str:
    """Guess the layout of a dataset folder.

    Args:
        dataset_dir: the dataset folder.

    Returns:
        ``"msd"`` when ``dataset.json`` exists, ``"nih"`` when ``PANCREAS_*`` patient folders or ``label*.nii.gz``
        files are found below it.

    Raises:
        FileNotFoundError: ``dataset_dir`` does not exist.
        ValueError: neither layout is recognised (the message names the folder and what was looked for).
    """
    root = _existing_dir(dataset_dir)
    if (root / "dataset.json").is_file():
        return "msd"
    for dirpath, dirnames, filenames in _walk(root):
        if any(PATIENT_RE.match(n) for n in dirnames + filenames) or any(_LABEL_RE.match(f) for f in filenames):
            return "nih"
    raise ValueError(
        f"Cannot tell the layout of dataset_dir {root}: it has no dataset.json (MSD layout) and no PANCREAS_* folders "
        "or label*.nii.gz files (NIH Pancreas-CT layout) below it. Point dataset_dir at the dataset folder."
    )


def load_datalist(dataset_dir: str | os.PathLike, layout: str = "auto") -> list[dict[str, str]]:
    """List the labelled cases of a dataset.

    Args:
        dataset_dir: the dataset folder (e.g. ``Task07_Pancreas`` or the NIH Pancreas-CT download folder).
        layout: ``"msd"``, ``"nih"`` or ``"auto"`` (see :func:`detect_layout`).

    Returns:
        One dict per case with absolute ``"image"`` and ``"label"`` path strings (for a DICOM series, ``"image"`` is
        the series folder), sorted by image path. Other keys of MSD entries are kept.

    Raises:
        FileNotFoundError: ``dataset_dir``, an image or a label does not exist (the message names the path; a missing
            label error names the image and the expected label path).
        ValueError: unknown layout, malformed or empty ``dataset.json``, or no case found.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}.")
    root = _existing_dir(dataset_dir)
    if layout == "auto":
        layout = detect_layout(root)
    cases = _load_msd(root) if layout == "msd" else _load_nih(root)
    return sorted(cases, key=lambda c: (c["image"], c["label"]))


def _load_msd(root: Path) -> list[dict[str, Any]]:
    json_path = root / "dataset.json"
    if not json_path.is_file():
        raise FileNotFoundError(f"{json_path} does not exist: an MSD dataset folder must hold dataset.json.")
    try:
        meta = json.loads(json_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{json_path} is not valid JSON: {e}") from e
    if not isinstance(meta, Mapping) or "training" not in meta:
        raise ValueError(f"{json_path} is malformed: expected a JSON object with a 'training' list (MSD layout).")
    training = meta["training"]
    if not isinstance(training, list):
        raise ValueError(f"{json_path} is malformed: 'training' must be a list, got {type(training).__name__}.")
    if not training:
        raise ValueError(f"{json_path} lists no training cases: the datalist of dataset_dir {root} is empty.")
    cases = []
    for i, entry in enumerate(training):
        if not isinstance(entry, Mapping) or not all(isinstance(entry.get(k), str) for k in ("image", "label")):
            raise ValueError(
                f"{json_path} is malformed: training[{i}] must be an object with string 'image' and 'label' paths, "
                f"got {entry!r}."
            )
        case = dict(entry)
        case["image"] = _resolve(root, entry["image"])
        case["label"] = _resolve(root, entry["label"])
        _check_case_files(case, root)
        cases.append(case)
    return cases


def _resolve(root: Path, path: str) -> str:
    p = Path(path).expanduser()
    # Absolute but not symlink-resolved: links to one file are distinct cases, and users see their own names.
    return os.path.normpath(p if p.is_absolute() else root / p)


def _check_case_files(case: Mapping[str, str], source: Path) -> None:
    if not os.path.exists(case["image"]):
        raise FileNotFoundError(f"image {case['image']} (listed in {source}) does not exist.")
    if not os.path.exists(case["label"]):
        raise FileNotFoundError(
            f"label {case['label']} of image {case['image']} does not exist (listed in {source})."
        )


def _load_nih(root: Path) -> list[dict[str, str]]:
    patients: dict[int, Path] = {}
    labels: dict[int, Path] = {}
    for dirpath, dirnames, filenames in _walk(root):
        for name in list(dirnames):
            m = PATIENT_RE.match(name)
            if m and not m.group(2):
                _add_unique(patients, int(m.group(1)), dirpath / name, "patient folders")
                dirnames.remove(name)  # a patient folder holds its series: do not search it for more patients
        for name in filenames:
            m = PATIENT_RE.match(name)
            if m and m.group(2):
                _add_unique(patients, int(m.group(1)), dirpath / name, "patient images")
            m = _LABEL_RE.match(name)
            if m:
                _add_unique(labels, int(m.group(1)), dirpath / name, "labels")
    if not patients:
        raise ValueError(
            f"No PANCREAS_NNNN patient folder found below dataset_dir {root} (NIH Pancreas-CT layout): the datalist is "
            "empty."
        )
    label_dir = _label_dir(root, labels)
    cases = []
    for number, patient in sorted(patients.items()):
        image = patient if patient.is_file() else _series_folder(patient)
        if number not in labels:
            expected = label_dir / f"label{number:04d}.nii.gz"
            raise FileNotFoundError(
                f"No label for image {image}: expected {expected} (labels are matched by patient number, "
                f"PANCREAS_{number:04d} -> label{number:04d}.nii.gz, searched for everywhere below {root})."
            )
        cases.append({"image": str(image), "label": str(labels[number])})
    unused = sorted(set(labels) - set(patients))
    if unused:
        logger.warning(
            "%d label file(s) below %s have no PANCREAS_NNNN image and are ignored, e.g. %s",
            len(unused), root, labels[unused[0]],
        )
    return cases


def _add_unique(found: dict[int, Path], number: int, path: Path, what: str) -> None:
    if number in found:
        raise ValueError(f"Two {what} for patient number {number}: {found[number]} and {path}. Keep only one.")
    found[number] = path


def _label_dir(root: Path, labels: Mapping[int, Path]) -> Path:
    if labels:
        return next(iter(labels.values())).parent
    return root / NIH_LABEL_FOLDER


def _series_folder(patient: Path) -> Path:
    """The DICOM series folder of one patient: the deepest folder holding regular files (any name, .dcm or not)."""
    leaves: list[tuple[int, int, str, Path]] = []
    for dirpath, dirnames, filenames in _walk(patient):
        files = [f for f in filenames if (dirpath / f).is_file()]
        if files:
            depth = len(dirpath.relative_to(patient).parts)
            leaves.append((depth, len(files), str(dirpath), dirpath))
    if not leaves:
        raise FileNotFoundError(f"Patient folder {patient} holds no DICOM files.")
    deepest = max(leaf[0] for leaf in leaves)
    candidates = sorted((leaf for leaf in leaves if leaf[0] == deepest), key=lambda leaf: (-leaf[1], leaf[2]))
    if len(candidates) > 1:
        logger.warning(
            "Patient folder %s holds %d series; using the largest, %s (%d files).",
            patient, len(candidates), candidates[0][3], candidates[0][1],
        )
    return candidates[0][3]


def _nifti_shape(path: str) -> tuple[int, ...]:
    import nibabel as nib

    try:
        return tuple(int(s) for s in nib.load(path).shape)  # header only: the voxel data are not read
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} does not exist.") from None
    except Exception as e:  # nibabel raises several types for unreadable files
        raise ValueError(f"Cannot read the NIfTI header of {path}: {e}") from e


def check_pairs(datalist: Sequence[Mapping[str, Any]]) -> None:
    """Check that every case's files exist and that NIfTI image/label pairs have the same spatial shape.

    Only the headers are read (no voxel data), so this is cheap enough to run on a whole dataset before training.
    A 4D image (several MSD modalities, channel last) is compared on its first three axes. DICOM series are checked
    after loading, by :class:`vnas_monai.data.transforms.CheckImageLabeld`.

    Args:
        datalist: cases with ``"image"`` and ``"label"`` paths.

    Raises:
        FileNotFoundError: a file or series folder does not exist (named).
        ValueError: a case lacks a key, a header cannot be read, or the spatial shapes differ (both files and both
            shapes are named).
    """
    for i, case in enumerate(datalist):
        if not isinstance(case, Mapping) or "image" not in case or "label" not in case:
            raise ValueError(f"datalist[{i}] must have 'image' and 'label' keys, got {case!r}.")
        image, label = str(case["image"]), str(case["label"])
        for kind, path in (("image", image), ("label", label)):
            if not os.path.exists(path):
                raise FileNotFoundError(f"{kind} {path} does not exist (datalist case {i}).")
        if not (_is_nifti(image) and _is_nifti(label)):
            continue
        image_shape, label_shape = _nifti_shape(image), _nifti_shape(label)
        if image_shape[:3] != label_shape[:3]:
            raise ValueError(
                f"Image {image} has spatial shape {image_shape[:3]} but its label {label} has {label_shape[:3]}."
            )
