"""Export a trained V-NAS network as a self-contained MONAI bundle (model-zoo layout) for MONAI Label and friends.

``python -m vnas_monai export_bundle --bundle_dir bundles/vnas_nih --arch arch.json --checkpoint model.pt
--output_dir vnas_nih_bundle`` writes::

    vnas_nih_bundle/
      LICENSE
      configs/inference.json   run id "run": sliding-window inference on images -> segmentations
      configs/train.json       run id "run": SupervisedTrainer (model-zoo keys, used by MONAI Label's BundleTrainTask)
      configs/metadata.json    model-zoo metadata; channel_def of the output names the labels
      configs/logging.conf
      models/model.pt          a plain state dict (torch.load(weights_only=True) loads it)
      models/arch.json         the architecture the weights belong to
      docs/README.md           data, training, results, licence, and how to use it

The configs reference files only through ``@bundle_root``, choose the device at run time (``"device": "auto"``),
and import only the installed ``vnas_monai`` package and MONAI: nothing points back at this repository.

The exported network is ``vnas_monai.spaces.vnas.VNASNet``, which refuses the weights of another architecture even
when loaded with ``strict=False`` (as MONAI Label and MONAI's ``CheckpointLoader`` do).

MONAI Label 0.8.5 (``monaibundle`` app) reads: inference.json keys ``network_def``, ``preprocessing``,
``postprocessing``, ``inferer``, ``device``, ``bundle_root``; metadata ``network_data_format`` (first input, first
output, the output's ``channel_def`` as label names); ``models/model.pt`` loaded into ``network_def``; train.json keys
``bundle_root``, ``device``, ``network``, ``train#trainer#max_epochs``, ``train#dataset#data``,
``validate#dataset#data``, ``train#handlers`` and run id ``run``.
"""

from __future__ import annotations

import ast
import datetime
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional, Union

from vnas_monai.spaces.vnas.backbone import DIVISOR as _DIVISOR

from .export_configs import inference_config, train_config
from .export_docs import bundle_readme, metadata_config
from .utils import parse_flip_axes

__all__ = [
    "export_bundle",
    "image_datalist",
    "read_source_settings",
    "inference_config",
    "train_config",
    "metadata_config",
]

#: Config keys read from the source bundle (literal values only; expressions are ignored).
SOURCE_KEYS = (
    "in_channels",
    "num_classes",
    "init_filters",
    "intensity_clip",
    "spacing",
    "roi_size",
    "infer_roi_size",
    "learning_rate",
    "batch_size",
    "num_samples",
    "flip_axes",
)
#: Source config files, first found wins per key (bundle folder itself, then its ``configs/``).
SOURCE_CONFIGS = ("train.json", "inference.json", "search.json")
_DEFAULTS: dict[str, Any] = {
    "in_channels": 1,
    "num_classes": 2,
    "init_filters": 64,
    "intensity_clip": None,
    "spacing": None,
    "roi_size": [96, 96, 64],
    "infer_roi_size": None,
    "learning_rate": 0.05,
    "batch_size": 1,
    "num_samples": 2,
    "flip_axes": [0, 1],
}


def image_datalist(images: Union[str, os.PathLike, Sequence[Any]]) -> list[dict[str, str]]:
    """Datalist for the exported inference.json: ``images`` is an image file, a DICOM series folder, a folder of
    images and series, or a list of files / ``{"image": ...}`` dicts.

    The same rules as the pipeline's inference bundle (:func:`vnas_monai.bundle.datalists.inference_datalist`): a folder
    is scanned for NIfTI/ITK files and DICOM series folders (a folder holding only DICOM slices is one series).

    Raises:
        FileNotFoundError: a file or folder that does not exist.
        ValueError: no image found, or two images that would be written under the same case name.
    """
    from vnas_monai.bundle.datalists import inference_datalist, scan_image_dir

    if isinstance(images, (str, os.PathLike)) and Path(images).expanduser().is_dir():
        images = scan_image_dir(images, field="images")
    return inference_datalist(images=images)


def _literal(value: Any) -> bool:
    """True for config values that are plain data (no ``$`` expression, no ``@`` reference anywhere)."""
    if isinstance(value, str):
        return not value.startswith(("$", "@", "%"))
    if isinstance(value, (list, tuple)):
        return all(_literal(v) for v in value)
    if isinstance(value, dict):
        return all(_literal(v) for v in value.values())
    return True


_PLANNED = re.compile(r"^\$vnas_monai\.plan\.plan_value\(@plan_dict, '\w+', (.*)\)$")


def _source_value(value: Any) -> tuple[bool, Any]:
    """``(found, value)`` of a source config entry: a literal, or the no-plan default of a planned key
    (``"$vnas_monai.plan.plan_value(@plan_dict, 'roi_size', [96, 96, 64])"`` gives ``[96, 96, 64]``)."""
    if _literal(value):
        return True, value
    match = _PLANNED.match(value) if isinstance(value, str) else None
    if match is not None:
        try:
            return True, ast.literal_eval(match.group(1))
        except (ValueError, SyntaxError):
            return False, None
    return False, None


def read_source_settings(bundle_dir: Union[str, os.PathLike, None]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Hyper-parameters and metadata of a source bundle (e.g. ``bundles/vnas_nih``).

    Returns:
        ``(settings, metadata)``: ``settings`` has every key of :data:`SOURCE_KEYS` (the first literal value found in
        train.json, inference.json, search.json, else a default); ``metadata`` is the source metadata.json or {}.
    """
    settings: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    if bundle_dir is not None:
        root = Path(bundle_dir)
        if not root.is_dir():
            raise FileNotFoundError(f"bundle_dir {root} is not a folder.")
        folders = [root, root / "configs"]
        for name in SOURCE_CONFIGS:
            for folder in folders:
                path = folder / name
                if not path.is_file():
                    continue
                config = json.loads(path.read_text())
                for key in SOURCE_KEYS:
                    if key not in settings and key in config:
                        found, value = _source_value(config[key])
                        if found:
                            settings[key] = value
        for folder in folders:
            if (folder / "metadata.json").is_file():
                metadata = json.loads((folder / "metadata.json").read_text())
                break
    for key, value in _DEFAULTS.items():
        settings.setdefault(key, value)
    return settings, metadata


def _labels(labels: Any, metadata: Mapping[str, Any], num_classes: Optional[int]) -> dict[str, str]:
    """Output channel names {"0": "background", "1": ...}, from ``labels`` or the source metadata."""
    if labels is None:
        outputs = metadata.get("network_data_format", {}).get("outputs", {})
        pred = next(iter(outputs.values()), {}) if outputs else {}
        labels = pred.get("channel_def")
    if labels is None:
        if num_classes is None:
            raise ValueError("give labels (or num_classes) for a source bundle without metadata.json channel_def.")
        labels = {str(i): ("background" if i == 0 else f"label_{i}") for i in range(int(num_classes))}
    if isinstance(labels, str):
        labels = json.loads(labels) if labels.strip().startswith(("{", "[")) else labels.split(",")
    if isinstance(labels, (list, tuple)):
        labels = {str(i): str(v) for i, v in enumerate(labels)}
    labels = {str(int(k)): str(v) for k, v in dict(labels).items()}
    if sorted(int(k) for k in labels) != list(range(len(labels))):
        raise ValueError(f"labels must name channels 0..N-1, got {labels}.")
    return labels


def _roi(value: Any, name: str) -> list[int]:
    roi = [int(v) for v in (value if isinstance(value, (list, tuple)) else [value] * 3)]
    if len(roi) != 3 or any(v < _DIVISOR or v % _DIVISOR for v in roi):
        raise ValueError(f"{name} must be 3 sizes, each a positive multiple of {_DIVISOR} (VNASNet), got {value}.")
    return roi


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=4) + "\n")


def _write_bundle(
    root: Path,
    name: str,
    net: Any,
    architecture: Any,
    settings: Mapping[str, Any],
    source: Mapping[str, Any],
    bundle_dir: Optional[str],
    data_licence: Optional[str],
    meta: dict[str, Any],
) -> None:
    """Write the bundle's files into ``root`` (the folder that will be renamed to ``name``)."""
    import torch

    from vnas_monai.bundle.templates import apache_2_0, logging_conf

    for sub in ("configs", "models", "docs"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu().clone() for k, v in net.state_dict().items()}, root / "models" / "model.pt")
    architecture.save(root / "models" / "arch.json")
    _write_json(root / "configs" / "inference.json", inference_config(settings))
    _write_json(root / "configs" / "train.json", train_config(settings))
    _write_json(root / "configs" / "metadata.json", meta)
    src_logging = Path(bundle_dir) / "logging.conf" if bundle_dir is not None else None
    logging_text = src_logging.read_text() if src_logging is not None and src_logging.is_file() else logging_conf()
    (root / "configs" / "logging.conf").write_text(logging_text)
    (root / "LICENSE").write_text(apache_2_0())
    terms = data_licence or source.get("data_licence") or (
        "see the data source's terms of use (e.g. TCIA data usage policy for NIH Pancreas-CT, CC BY-SA 4.0 for the "
        "Medical Segmentation Decathlon)"
    )
    readme = bundle_readme(meta, settings, architecture, terms, name)
    (root / "docs" / "README.md").write_text(readme + f"\nExported on {datetime.date.today().isoformat()}.\n")


def export_bundle(
    output_dir: str,
    checkpoint: str,
    arch: Optional[str] = None,
    bundle_dir: Optional[str] = "bundles/vnas_nih",
    labels: Any = None,
    num_classes: Optional[int] = None,
    in_channels: Optional[int] = None,
    init_filters: Optional[int] = None,
    intensity_clip: Any = None,
    spacing: Any = None,
    roi_size: Any = None,
    infer_roi_size: Any = None,
    flip_axes: Any = None,
    modality: Optional[str] = None,
    name: Optional[str] = None,
    task: Optional[str] = None,
    description: Optional[str] = None,
    data_source: Optional[str] = None,
    version: str = "0.1.0",
    changelog: Optional[str] = None,
    metrics: Optional[Mapping[str, Any]] = None,
    data_licence: Optional[str] = None,
    overwrite: bool = False,
) -> str:
    """Write a self-contained MONAI bundle (model-zoo layout) for a trained V-NAS network.

    Example::

        python -m vnas_monai export_bundle --checkpoint runs/vnas_nih/fold0/train --output_dir vnas_nih_bundle

    Args:
        output_dir: the bundle folder to create (its name is the MONAI Label model name).
        checkpoint: the training run's folder (``<work_dir>/fold<k>/train``: its ``model.pt``) or its weights: a
            plain state dict, or a MONAI checkpoint with it under ``network``/``model``. The run's ``settings.json``
            (width, classes and their names, channels, intensity window, spacing, patch sizes, flip axes) is read
            from beside the weights; an explicit value below that contradicts it is refused.
        arch: arch.json path or preset of the trained network; default: the checkpoint's ``arch_code``.
        bundle_dir: the source bundle whose settings and metadata are exported (``in_channels``, ``num_classes``,
            ``init_filters``, ``intensity_clip``, ``spacing``, ``roi_size``, label names...); None for defaults.
        labels: channel names, ``{"0": "background", "1": "pancreas"}`` or ``background,pancreas``; default: the
            source metadata's output ``channel_def``.
        num_classes, in_channels, init_filters: override the source settings (must match the checkpoint).
        intensity_clip: ``[min, max]`` window, or ``False``/``"none"`` for none (MRI); default: the source's.
        spacing: target voxel size in mm, or ``False``/``"none"`` to keep the image's; default: the source's.
        roi_size: training patch (multiples of 32); default: the source's.
        infer_roi_size: sliding-window patch (multiples of 32); default: ``roi_size``.
        flip_axes: spatial axes (0, 1, 2) of train.json's random flips; default: the source's. Leave out an axis
            whose flip swaps two labels (on the MSD hippocampus a flip along y swaps anterior and posterior).
        modality: ``CT`` (default when a HU window is set) or ``MR`` etc.
        name, task, description, data_source, version, changelog: metadata fields (default: the source's).
        metrics: evaluation results of these weights, e.g. ``'{"mean_dice": 0.84}'`` (written to eval_metrics).
        data_licence: licence/terms of the training data, for docs/README.md.
        overwrite: replace an existing ``output_dir``.

    Returns:
        The bundle folder.

    Raises:
        ValueError: the weights do not fit the architecture / settings (VNASNet refuses them), bad sizes or labels.
        FileExistsError: ``output_dir`` exists and ``overwrite`` is False.
    """
    import torch

    from vnas_monai.bundle.settings import (
        CHECKED_SETTINGS,
        check_run_settings,
        load_run_settings,
        resolve_checkpoint,
        shape_mismatch,
    )
    from vnas_monai.bundle.weights import load_state_dict
    from vnas_monai.spaces.vnas import VNASNet
    from vnas_monai.spaces.vnas.encoding import Architecture

    settings, source = read_source_settings(bundle_dir)
    weights = resolve_checkpoint(checkpoint)
    stored_from, stored = load_run_settings(weights)  # the training run's settings.json (or the weights' shapes)
    given: dict[str, Any] = {}
    for key, value in (("in_channels", in_channels), ("init_filters", init_filters), ("num_classes", num_classes),
                       ("roi_size", roi_size), ("infer_roi_size", infer_roi_size), ("flip_axes", flip_axes)):
        if value is not None:
            given[key] = value
    for key, value in (("intensity_clip", intensity_clip), ("spacing", spacing)):
        if value is False or (isinstance(value, str) and value.lower() in ("none", "off", "null", "false")):
            given[key] = None
        elif value is not None:
            given[key] = [float(v) for v in (value if isinstance(value, (list, tuple)) else [value] * 3)]
    check_run_settings(weights, **{k: v for k, v in given.items() if k in CHECKED_SETTINGS})
    settings.update({k: v for k, v in stored.items() if k in settings})
    settings.update({k: v for k, v in given.items() if k != "num_classes"})
    if num_classes is None:
        num_classes = stored.get("num_classes")
    if labels is None and stored.get("class_names"):
        labels = list(stored["class_names"])
    elif labels is not None and stored.get("class_names"):
        names = list(_labels(labels, source, None).values())
        if names != list(stored["class_names"]):
            raise ValueError(
                f"labels {names} contradict the training run of {weights}: it was trained with class_names "
                f"{list(stored['class_names'])} ({stored_from}). Leave --labels out to use them."
            )
    settings["flip_axes"] = parse_flip_axes(settings["flip_axes"])
    if isinstance(settings["intensity_clip"], (list, tuple)) and len(settings["intensity_clip"]) != 2:
        raise ValueError(f"intensity_clip must be [min, max], got {settings['intensity_clip']}.")
    if isinstance(metrics, str):
        metrics = json.loads(metrics)
    label_names = _labels(labels, source, num_classes if num_classes is not None else None)
    if num_classes is not None and int(num_classes) != len(label_names):
        raise ValueError(f"num_classes={num_classes} but {len(label_names)} labels: {label_names}.")
    settings["num_classes"] = len(label_names)
    for key in ("in_channels", "init_filters"):
        settings[key] = int(settings[key])
    settings["roi_size"] = _roi(settings["roi_size"], "roi_size")
    settings["infer_roi_size"] = _roi(
        infer_roi_size if infer_roi_size is not None else settings["infer_roi_size"] or settings["roi_size"],
        "infer_roi_size",
    )
    if modality is None:
        src_inputs = source.get("network_data_format", {}).get("inputs", {})
        modality = next(iter(src_inputs.values()), {}).get("modality") if src_inputs else None
        modality = modality or ("CT" if settings["intensity_clip"] else "MR")

    state = load_state_dict(weights)
    if arch is None:
        if "arch_code" not in state:
            raise ValueError(f"{checkpoint} has no arch_code: give --arch (the arch.json it was trained with).")
        code = torch.as_tensor(state["arch_code"]).tolist()
        architecture = Architecture.from_codes(code)
    else:
        architecture = Architecture.resolve(arch)
    net = VNASNet(
        spatial_dims=3,
        in_channels=settings["in_channels"],
        out_channels=settings["num_classes"],
        architecture=architecture,
        init_filters=settings["init_filters"],
    )
    mismatch = shape_mismatch(net, state, weights)
    if mismatch:
        raise ValueError(mismatch)
    try:
        net.load_state_dict(state, strict=True)
    except (RuntimeError, ValueError) as err:
        raise ValueError(
            f"{checkpoint} does not fit VNASNet(architecture={architecture!r}, in_channels={settings['in_channels']}, "
            f"out_channels={settings['num_classes']}, init_filters={settings['init_filters']}): {err}"
        ) from err

    out = Path(output_dir)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite True to replace it.")
    # written into a hidden sibling folder and renamed into place: a failed export leaves no partial bundle and, with
    # --overwrite, the previous bundle stays until the new one is complete
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        _write_bundle(stage, out.name, net, architecture, settings, source, bundle_dir, data_licence,
                      metadata_config(settings, source, label_names, architecture, str(version), name, modality,
                                      description, metrics, changelog, task=task, data_source=data_source))
        if out.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
            out.rename(retired / out.name)
            stage.rename(out)
            shutil.rmtree(retired)
        else:
            stage.rename(out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return str(out)
