"""Glue for the retrain / inference / evaluation bundles (``bundles/*/train.json``, ``inference.json``,
``evaluate.json``): which architecture a stage builds, which weights it loads, which images it reads, and how its
outputs are named.

Weights files: ``model.pt`` (best validation Dice) and ``model_final.pt`` (last iteration) written by the train
bundle are *plain state dicts* of :class:`vnas_monai.networks.VNASNet` (MONAI's ``CheckpointSaver`` stores a
single-entry ``save_dict`` unwrapped). They load with ``torch.load(path, weights_only=True)`` and then
``network.load_state_dict(...)`` directly, and with MONAI's ``CheckpointLoader(load_dict={"model": net})``;
:func:`load_weights` accepts that format and ``{"model": state_dict}`` alike. The state dict carries the
network's ``arch_code`` buffer, so the architecture of a weights file can be read back from it
(:func:`checkpoint_architecture`): the inference and evaluation bundles need no ``arch.json``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from vnas_monai.arch import Architecture
from vnas_monai.io import atomic_write_text

__all__ = [
    "AUTO",
    "LOSSES",
    "dice_weight",
    "case_name",
    "case_name_formatter",
    "checkpoint_architecture",
    "evaluation_datalist",
    "fold_splits",
    "inference_datalist",
    "load_state_dict",
    "load_weights",
    "resolve_architecture",
    "resolve_class_names",
    "parse_flip_axes",
    "save_architecture",
    "scan_image_dir",
    "validate_at_end",
]

logger = logging.getLogger(__name__)

#: The value of ``arch`` that lets a stage find its architecture itself (see :func:`resolve_architecture`).
AUTO = "auto"
_NIFTI_RE = re.compile(r"\.nii(\.gz)?$", re.IGNORECASE)
_IMAGE_EXT_RE = re.compile(r"\.(nii\.gz|nii|nrrd|mha|mhd|dcm)$", re.IGNORECASE)
_PATIENT_RE = re.compile(r"^pancreas_\d+$", re.IGNORECASE)


#: The bundles' ``loss`` key -> weight of the Dice term of MONAI's ``DiceCELoss`` (cross-entropy always weighs 1):
#: ``"ce"`` is the paper's loss, ``"dice_ce"`` nnU-Net's.
LOSSES = {"ce": 0.0, "dice_ce": 1.0}


def dice_weight(loss: str) -> float:
    """``lambda_dice`` of the bundles' ``DiceCELoss`` for their ``loss`` key.

    Raises:
        ValueError: ``loss`` is not a key of :data:`LOSSES` (a misspelt value must not silently pick a loss).
    """
    if not isinstance(loss, str) or loss.lower() not in LOSSES:
        raise ValueError(f"loss: unknown value {loss!r}; choose one of {sorted(LOSSES)}.")
    return LOSSES[loss.lower()]


def parse_flip_axes(value: Any) -> list[int]:
    """The ``flip_axes`` key (random flips of the training stages and of exported bundles) as sorted distinct axes.

    ``[]``, ``None``, ``False`` or ``"none"`` mean no flips; a single axis may be given as an int.

    Raises:
        ValueError: an entry that is not a spatial axis 0, 1 or 2.
    """
    if value is None or value is False or (isinstance(value, str) and value.lower() in ("none", "off", "false", "")):
        return []
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not all(type(v) is int and v in (0, 1, 2) for v in items):  # type(): True is an int but not an axis
        raise ValueError(f"flip_axes must be spatial axes among 0, 1, 2 (e.g. [0] or [0, 1]), got {value!r}.")
    return sorted(set(items))


def load_state_dict(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """The network state dict of a weights file, loaded with ``torch.load(weights_only=True)``.

    Accepts a plain state dict, or one held under ``model``, ``network``, ``state_dict`` or ``net`` (MONAI
    ``CheckpointSaver`` files, e.g. the search's and the retraining's ``checkpoint_*.pt``); ``DataParallel`` /
    ``DistributedDataParallel`` ``module.`` prefixes are removed.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file cannot be read with ``torch.load(weights_only=True)`` or holds no state dict.
    """
    from vnas_monai.bundle.settings import resolve_checkpoint

    path = resolve_checkpoint(path)  # a run folder: its model.pt
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist (train the network first, or pass --checkpoint).")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise ValueError(f"cannot load weights file {path} with torch.load(weights_only=True): {e}") from e
    if isinstance(data, Mapping):
        nested = [k for k in ("model", "network", "state_dict", "net") if isinstance(data.get(k), Mapping)]
        data = data[nested[0]] if nested else data
    if not isinstance(data, Mapping) or not data or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise ValueError(
            f"weights file {path} is not a state dict (nor one under 'model', 'network', 'state_dict' or 'net')."
        )
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in data.items()}


def load_weights(network: torch.nn.Module, path: str | os.PathLike, map_location: Any = "cpu") -> torch.nn.Module:
    """Load ``path`` (see :func:`load_state_dict`) into ``network`` strictly and return the network.

    Raises:
        ValueError: the weights do not fit: one line naming the width / channels / classes they were trained with.
    """
    from vnas_monai.bundle.settings import shape_mismatch

    state = load_state_dict(path, map_location)
    mismatch = shape_mismatch(network, state, path)
    if mismatch:
        raise ValueError(mismatch)
    try:
        network.load_state_dict(state)
    except (RuntimeError, ValueError) as e:
        raise ValueError(f"weights file {path} does not fit the network: {e}") from e
    return network


def checkpoint_architecture(path: str | os.PathLike) -> Architecture:
    """The architecture of a ``VNASNet`` weights file, read from its ``arch_code`` buffer.

    Raises:
        ValueError: the state dict has no ``arch_code`` (not a ``VNASNet``) or a malformed one.
    """
    state = load_state_dict(path)
    if "arch_code" not in state:
        raise ValueError(f"weights file {path} has no 'arch_code': it is not a VNASNet state dict.")
    codes = [int(c) for c in state["arch_code"].flatten().tolist()]
    try:
        return Architecture.from_codes(codes, meta={"source": str(path)})
    except ValueError as e:
        raise ValueError(f"weights file {path}: {e}") from None


def resolve_architecture(
    arch: Any = AUTO,
    checkpoint: str | os.PathLike | None = None,
    search_arch: str | os.PathLike | None = None,
    fallback: Any = None,
) -> Architecture:
    """The architecture a stage builds.

    ``arch`` other than ``"auto"`` wins: an ``Architecture``, a preset (``"nih"``, ``"msd_lung"``,
    ``"msd_pancreas"``), a uniform code (``"2d"``, ``"3d"``, ``"p3d"``) or a path to an ``arch.json``. With
    ``"auto"`` the first that exists is used: the ``arch_code`` of ``checkpoint`` (inference, evaluation), the
    search's ``search_arch`` file, then ``fallback`` (the bundle's preset, with a warning).

    Raises:
        FileNotFoundError: ``"auto"`` found nothing and there is no fallback (the message names what was tried).
        ValueError: an unknown preset or a malformed ``arch.json`` (named).
    """
    if arch is None or (isinstance(arch, str) and arch.strip().lower() == AUTO):
        if checkpoint and Path(checkpoint).is_dir():  # a training run's folder: its model.pt
            from vnas_monai.bundle.settings import resolve_checkpoint

            checkpoint = resolve_checkpoint(checkpoint)
        if checkpoint and Path(checkpoint).is_file():
            return checkpoint_architecture(checkpoint)
        if search_arch and Path(search_arch).is_file():
            return Architecture.load(search_arch)
        if fallback is not None:
            logger.warning(
                "arch='auto': no %s found; using the architecture %r. Pass --arch (arch.json or preset) to choose.",
                " nor ".join(str(p) for p in (checkpoint, search_arch) if p) or "searched architecture", fallback,
            )
            return Architecture.resolve(fallback)
        tried = [str(p) for p in (checkpoint, search_arch) if p]
        raise FileNotFoundError(
            f"arch='auto' found no architecture (looked for {', '.join(tried) or 'nothing'}): run the search first or "
            "pass --arch with an arch.json path or a preset ('nih', 'msd_lung', 'msd_pancreas')."
        )
    return Architecture.resolve(arch)


def resolve_class_names(
    class_names: str | Sequence[str], num_classes: int, dataset_dir: str | os.PathLike | None = None
) -> list[str]:
    """The names of a stage's ``num_classes`` classes, background first, checked against ``num_classes``.

    Args:
        class_names: one name per class, or ``"auto"``: the ``labels`` of ``<dataset_dir>/dataset.json`` (MSD
            layout) when it names ``num_classes`` classes, else ``background, class_1, ...``.
        num_classes: the network's output channels.
        dataset_dir: the dataset folder, for ``"auto"``.

    Raises:
        ValueError: an explicit list of another length (so that no class is silently left out of the metrics).
    """
    n = int(num_classes)
    if isinstance(class_names, str):
        if class_names != AUTO:
            raise ValueError(f"class_names must be a list of names or '{AUTO}', got {class_names!r}.")
        labels: Any = None
        meta = Path(dataset_dir, "dataset.json") if dataset_dir else None
        if meta is not None and meta.is_file():
            import json

            try:
                labels = json.loads(meta.read_text()).get("labels")
            except (OSError, ValueError) as e:
                raise ValueError(f"class_names='auto': cannot read the labels of {meta}: {e}") from e
        if isinstance(labels, Mapping) and sorted(labels, key=str) == sorted((str(i) for i in range(n)), key=str):
            return [str(labels[str(i)]) for i in range(n)]
        return ["background"] + [f"class_{i}" for i in range(1, n)]
    names = [str(c) for c in class_names]
    if len(names) != n:
        raise ValueError(
            f"class_names lists {len(names)} name(s) {names} but num_classes is {n}: give one name per class, "
            f"background first, or '{AUTO}' to take them from dataset.json."
        )
    return names


def save_architecture(architecture: Architecture, output_dir: str | os.PathLike, png: bool = True) -> Path:
    """Write ``<output_dir>/arch.json`` (and ``architecture.png``, cells coloured by 2D/3D/P3D); returns the JSON."""
    out = Path(output_dir)
    path = architecture.save(out / "arch.json")
    if png:
        from vnas_monai.bundle.figures import plot_architecture

        try:
            plot_architecture(architecture, out / "architecture.png")
        except Exception as e:  # the JSON is what later stages read; the picture is for people
            logger.warning("could not draw %s: %s", out / "architecture.png", e)
    return path


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


def validate_at_end(trainer: Any, evaluator: Any, interval: int) -> None:
    """Run ``evaluator`` once more after training unless the last epoch was just validated by MONAI's
    ``ValidationHandler(interval)``, so the best-model checkpoint (``model.pt``) always exists after a run."""
    epoch = int(trainer.state.epoch)
    if epoch > 0 and epoch % int(interval) != 0:
        evaluator.run(epoch)


def case_name(path: str | os.PathLike) -> str:
    """Case name of an input image: a NIfTI/ITK file's name without extension; for a DICOM series folder (or a DICOM
    file), the NIH patient folder (``PANCREAS_0001``) above it if there is one, else the series folder's name."""
    path = Path(str(path))
    if _NIFTI_RE.search(path.name) or (_IMAGE_EXT_RE.search(path.name) and not path.name.lower().endswith(".dcm")):
        return _IMAGE_EXT_RE.sub("", path.name)
    folder = path.parent if path.name.lower().endswith(".dcm") else path
    for part in (folder, *folder.parents):
        if _PATIENT_RE.match(part.name):
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


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` atomically, creating parent folders."""
    atomic_write_text(path, text)
    return Path(path)
