"""Export a trained network of any registered search space as a self-contained MONAI bundle (model-zoo layout) for
MONAI Label and friends.

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

The arch.json's ``space`` key (default ``"vnas"``) names the registered search space; its
:class:`vnas_monai.spaces.BundleNetwork` gives the configs' ``network_def``, the patch divisibility and the words of
the documents. The configs reference files only through ``@bundle_root``, choose the device at run time
(``"device": "auto"``), and import only the installed ``vnas_monai`` package, MONAI and the space's own module:
nothing points back at this repository.

MONAI Label 0.8.5 (``monaibundle`` app) reads: inference.json keys ``network_def``, ``preprocessing``,
``postprocessing``, ``inferer``, ``device``, ``bundle_root``; metadata ``network_data_format`` (first input, first
output, the output's ``channel_def`` as label names); ``models/model.pt`` loaded into ``network_def``; train.json keys
``bundle_root``, ``device``, ``network``, ``train#trainer#max_epochs``, ``train#dataset#data``,
``validate#dataset#data``, ``train#handlers`` and run id ``run``.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

from vnas_monai.bundle.utils import parse_flip_axes
from vnas_monai.spaces import BundleNetwork, get_space

from . import configs
from .docs import bundle_readme, metadata_config
from .source import label_names, read_source_settings

__all__ = ["DEFAULT_SPACE", "build_network", "export_bundle", "resolve_encoding"]

#: the space of arch.json files without a ``space`` key, of presets and of weights that carry ``arch_code``
DEFAULT_SPACE = "vnas"


def resolve_encoding(arch: Any, state: Mapping[str, Any], checkpoint: Any, stored: Any = None) -> Any:
    """The encoding to export.

    Args:
        arch: an encoding, a JSON dict, an arch.json path (its ``space`` key names the space), a preset of the
            default space (``"nih"``, ``"3d"``...), or ``None``: the codes the weights carry (the default space's
            ``arch_code`` buffer), else the encoding the run's ``settings.json`` stored (``stored``, a JSON dict
            with its ``space``, e.g. a NAS-3D-U-Net genotype).
        state: the weights' state dict.
        checkpoint: what the weights were given as (for messages).
        stored: the ``architecture`` of the run's settings, if any.

    Raises:
        ValueError: ``arch`` is ``None`` and the weights carry no ``arch_code``; a file its space refuses.
        FileNotFoundError: an arch.json path that does not exist.
    """
    from vnas_monai.spaces.aggregate import load_encoding

    if arch is None:
        # the run's own record of its encoding, when it names its space, is the first source (V-NAS records only
        # its codes there and is read from the weights' arch_code below)
        if isinstance(stored, Mapping) and "space" in stored:
            return load_encoding(dict(stored), default_space=DEFAULT_SPACE)
        if "arch_code" not in state:
            raise ValueError(f"{checkpoint} has no arch_code and its settings.json no architecture: give --arch "
                             "(the arch.json it was trained with).")
        codes = [int(c) for c in state["arch_code"].flatten().tolist()]
        return get_space(DEFAULT_SPACE).encoding_class().from_codes(codes)
    if isinstance(arch, (str, os.PathLike)) and not (str(arch).endswith(".json") or Path(arch).exists()):
        return get_space(DEFAULT_SPACE).encoding_class().resolve(str(arch))
    return load_encoding(arch, default_space=DEFAULT_SPACE)


def build_network(network: BundleNetwork, encoding: Any, settings: Mapping[str, Any]) -> Any:
    """The network the exported ``network_def`` builds, built the same way (MONAI's ``ConfigParser``, with the
    bundle keys the configs hold) with the encoding itself in place of ``models/arch.json``."""
    from monai.bundle import ConfigParser

    parser = ConfigParser({
        "in_channels": settings["in_channels"], "num_classes": settings["num_classes"],
        "init_filters": settings["init_filters"], **{key: settings[key] for key in configs.network_keys(network)},
        "architecture": encoding, "network_def": network.network_def("@architecture"),
    })
    return parser.get_parsed_content("network_def", copy=False)


def _roi(value: Any, name: str, divisor: int, space: str, dims: int = 3) -> list[int]:
    roi = [int(v) for v in (value if isinstance(value, (list, tuple)) else [value] * dims)]
    if len(roi) != dims or any(v < divisor or v % divisor for v in roi):
        raise ValueError(f"{name} must be {dims} sizes, each a positive multiple of {divisor} (the input of the "
                         f"{space!r} space's network), got {value}.")
    return roi


def _network_input(net: Any, network: BundleNetwork) -> tuple[int, BundleNetwork]:
    """``(spatial sizes, space)`` of the built network's input: a network that knows its own ``spatial_dims`` and
    ``divisor`` (MB-NAS: 2D or 3D, ``2 ** deepest level`` of its encoding) refines the space's 3 sizes and divisor;
    the returned space carries the divisor into the documents."""
    own = getattr(net, "divisor", None)
    divisor = math.lcm(int(network.divisor), int(own)) if isinstance(own, int) and own > 0 else int(network.divisor)
    return int(getattr(net, "spatial_dims", 3)), dataclasses.replace(network, divisor=divisor)


def _aliased(stored: Mapping[str, Any], given: Mapping[str, Any], source: str, weights: Any,
             aliases: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """The export settings the run records only under the space's ``aliases`` (``BundleNetwork.run_aliases``) and
    that are not ``given``.

    Raises:
        ValueError: a given value of a checked setting that contradicts its alias (naming both and the file).
    """
    from vnas_monai.bundle.settings import CHECKED_SETTINGS

    out = {}
    for key, alias in aliases:
        if key in stored or alias not in stored:
            continue
        if key in CHECKED_SETTINGS and key in given and given[key] != stored[alias]:
            raise ValueError(f"{key}={given[key]!r} contradicts the training run of {weights}: it was trained with "
                             f"{alias}={stored[alias]!r} ({source}). Leave --{key} out to use the stored value.")
        if key not in given:
            out[key] = stored[alias]
    return out


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=4) + "\n")


def _write_bundle(
    root: Path,
    name: str,
    net: Any,
    encoding: Any,
    network: BundleNetwork,
    settings: Mapping[str, Any],
    source: Mapping[str, Any],
    bundle_dir: Optional[str],
    data_licence: Optional[str],
    meta: dict[str, Any],
) -> None:
    """Write the bundle's files into ``root`` (the folder that will be renamed to ``name``)."""
    import torch

    from .templates import apache_2_0, logging_conf

    for sub in ("configs", "models", "docs"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu().clone() for k, v in net.state_dict().items()}, root / "models" / "model.pt")
    encoding.save(root / "models" / "arch.json")
    adapt = network.adapt_config or (lambda _name, config, _settings: config)
    _write_json(root / "configs" / "inference.json", adapt("inference", configs.inference_config(settings, network),
                                                           settings))
    _write_json(root / "configs" / "train.json", adapt("train", configs.train_config(settings, network), settings))
    _write_json(root / "configs" / "metadata.json", meta)
    src_logging = Path(bundle_dir) / "logging.conf" if bundle_dir is not None else None
    logging_text = src_logging.read_text() if src_logging is not None and src_logging.is_file() else logging_conf()
    (root / "configs" / "logging.conf").write_text(logging_text)
    (root / "LICENSE").write_text(apache_2_0())
    terms = data_licence or source.get("data_licence") or (
        "see the data source's terms of use (e.g. TCIA data usage policy for NIH Pancreas-CT, CC BY-SA 4.0 for the "
        "Medical Segmentation Decathlon)"
    )
    readme = bundle_readme(meta, settings, encoding, network, terms, name)
    (root / "docs" / "README.md").write_text(readme + f"\nExported on {datetime.date.today().isoformat()}.\n")


def _given(**values: Any) -> dict[str, Any]:
    """The settings given on the command line: ``intensity_clip`` / ``spacing`` as 3 floats, or ``None`` for
    ``False`` / ``"none"``; the others as given."""
    given: dict[str, Any] = {}
    for key, value in values.items():
        if key in ("intensity_clip", "spacing"):
            if value is False or (isinstance(value, str) and value.lower() in ("none", "off", "null", "false")):
                given[key] = None
            elif value is not None:
                given[key] = [float(v) for v in (value if isinstance(value, (list, tuple)) else [value] * 3)]
        elif value is not None:
            given[key] = value
    return given


def _move_into_place(stage: Path, out: Path) -> None:
    """Rename the complete ``stage`` folder to ``out``; a previous ``out`` is removed only once it is replaced."""
    if out.exists():
        retired = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
        out.rename(retired / out.name)
        stage.rename(out)
        shutil.rmtree(retired)
    else:
        stage.rename(out)


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
    """Write a self-contained MONAI bundle (model-zoo layout) for a trained network (V-NAS or any registered space).

    Example::

        python -m vnas_monai export_bundle --checkpoint runs/vnas_nih/fold0/train --output_dir vnas_nih_bundle

    Args:
        output_dir: the bundle folder to create (its name is the MONAI Label model name).
        checkpoint: the training run's folder (``<work_dir>/fold<k>/train``: its ``model.pt``) or its weights: a
            plain state dict, or a MONAI checkpoint with it under ``network``/``model``. The run's ``settings.json``
            (width, classes and their names, channels, intensity window, spacing, patch sizes, flip axes) is read
            from beside the weights; an explicit value below that contradicts it is refused.
        arch: arch.json path (its ``space`` key names the search space, default V-NAS) or V-NAS preset of the
            trained network; default: the encoding the run's ``settings.json`` records with its space (NAS-3D-U-Net,
            MB-NAS), else the checkpoint's ``arch_code`` (V-NAS weights carry it).
        bundle_dir: the source bundle whose settings and metadata are exported (``in_channels``, ``num_classes``,
            ``init_filters``, ``intensity_clip``, ``spacing``, ``roi_size``, label names...); None for defaults.
        labels: channel names, ``{"0": "background", "1": "pancreas"}`` or ``background,pancreas``; default: the
            source metadata's output ``channel_def``.
        num_classes, in_channels, init_filters: override the source settings (must match the checkpoint).
        intensity_clip: ``[min, max]`` window, or ``False``/``"none"`` for none (MRI); default: the source's.
        spacing: target voxel size in mm, or ``False``/``"none"`` to keep the image's; default: the source's.
        roi_size: training patch, one size per spatial dimension of the network (2 for a 2D MB-NAS network), each a
            multiple of its divisor (32 for V-NAS, ``2 ** deepest level`` for MB-NAS); default: the run's
            (``roi_size``, or MB-NAS's ``patch_size``), else the source's.
        infer_roi_size: inference patch (sliding window, or the in-plane window of a 2D network's slices; the same
            multiples); default: the run's, else the source's, else ``roi_size``.
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
        ValueError: the weights do not fit the architecture / settings (the network refuses them), bad sizes or
            labels, a space that declares no bundle network.
        FileExistsError: ``output_dir`` exists and ``overwrite`` is False.
    """
    from vnas_monai.bundle.settings import (
        CHECKED_SETTINGS,
        check_run_settings,
        load_run_settings,
        resolve_checkpoint,
        shape_mismatch,
    )
    from vnas_monai.bundle.weights import load_state_dict

    settings, source = read_source_settings(bundle_dir)
    weights = resolve_checkpoint(checkpoint)
    stored_from, stored = load_run_settings(weights)  # the training run's settings.json (or the weights' shapes)
    given = _given(in_channels=in_channels, init_filters=init_filters, num_classes=num_classes, roi_size=roi_size,
                   infer_roi_size=infer_roi_size, flip_axes=flip_axes, intensity_clip=intensity_clip, spacing=spacing)
    check_run_settings(weights, **{k: v for k, v in given.items() if k in CHECKED_SETTINGS})
    settings.update({k: v for k, v in stored.items() if k in settings})
    settings.update({k: v for k, v in given.items() if k != "num_classes"})
    if num_classes is None:
        num_classes = stored.get("num_classes")
    explicit_labels = labels
    if labels is None and stored.get("class_names"):
        labels = list(stored["class_names"])
    elif labels is not None and stored.get("class_names"):
        names = list(label_names(labels, source, None).values())
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
    state = load_state_dict(weights)
    encoding = resolve_encoding(arch, state, checkpoint, stored.get("architecture"))
    space = get_space(encoding.space)
    network = space.bundle_network()
    settings.update(_aliased(stored, given, stored_from, weights, network.run_aliases))
    settings.update({k: stored[k] for k in network.settings_keys if k in stored})
    lacking = [key for key in configs.network_keys(network) if key not in settings]
    if lacking:
        raise ValueError(f"the training run of {weights} does not record {', '.join(lacking)}, which the "
                         f"{space.name!r} network needs ({stored_from or 'no settings.json beside the weights'}): "
                         f"export the model.pt of a {network.title} training run, with its settings.json.")
    if network.output_labels is not None:  # e.g. sigmoid regions: the written label values are the space's
        labels_def = {str(k): str(v) for k, v in network.output_labels(settings).items()}
        if explicit_labels is not None and (list(label_names(explicit_labels, source, None).values())
                                            != list(labels_def.values())):
            raise ValueError(f"labels {explicit_labels} contradict the {space.name!r} network's written labels "
                             f"{labels_def}; leave --labels out.")
        settings["num_classes"] = int(num_classes if num_classes is not None else settings["num_classes"])
    else:
        labels_def = label_names(labels, source, num_classes)
        if num_classes is not None and int(num_classes) != len(labels_def):
            raise ValueError(f"num_classes={num_classes} but {len(labels_def)} labels: {labels_def}.")
        settings["num_classes"] = len(labels_def)
    for key in ("in_channels", "init_filters"):
        settings[key] = int(settings[key])
    if modality is None:
        src_inputs = source.get("network_data_format", {}).get("inputs", {})
        modality = next(iter(src_inputs.values()), {}).get("modality") if src_inputs else None
        modality = modality or ("CT" if settings["intensity_clip"] else "MR")

    net = build_network(network, encoding, settings)
    mismatch = shape_mismatch(net, state, weights)
    if mismatch:
        raise ValueError(mismatch)
    try:
        net.load_state_dict(state, strict=True)
    except (RuntimeError, ValueError) as err:
        raise ValueError(
            f"{checkpoint} does not fit {type(net).__name__} of the {space.name!r} space (architecture "
            f"{encoding.summary()}, in_channels={settings['in_channels']}, out_channels={settings['num_classes']}, "
            f"init_filters={settings['init_filters']}): {err}"
        ) from err
    dims, network = _network_input(net, network)
    settings["roi_size"] = _roi(settings["roi_size"], "roi_size", network.divisor, space.name, dims)
    settings["infer_roi_size"] = _roi(
        infer_roi_size if infer_roi_size is not None else settings["infer_roi_size"] or settings["roi_size"],
        "infer_roi_size", network.divisor, space.name, dims,
    )

    out = Path(output_dir)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite True to replace it.")
    # written into a hidden sibling folder and renamed into place: a failed export leaves no partial bundle and, with
    # --overwrite, the previous bundle stays until the new one is complete
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        meta = metadata_config(settings, source, labels_def, encoding, network, str(version), name, modality,
                               description, metrics, changelog, task=task, data_source=data_source)
        if network.adapt_config is not None:
            meta = network.adapt_config("metadata", meta, settings)
        _write_bundle(stage, out.name, net, encoding, network, settings, source, bundle_dir, data_licence, meta)
        _move_into_place(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return str(out)
