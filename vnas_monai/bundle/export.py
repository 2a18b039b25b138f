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

The exported network is ``vnas_monai.networks.VNASNet``, which refuses the weights of another architecture even
when loaded with ``strict=False`` (as MONAI Label and MONAI's ``CheckpointLoader`` do).

MONAI Label 0.8.5 (``monaibundle`` app) reads: inference.json keys ``network_def``, ``preprocessing``,
``postprocessing``, ``inferer``, ``device``, ``bundle_root``; metadata ``network_data_format`` (first input, first
output, the output's ``channel_def`` as label names); ``models/model.pt`` loaded into ``network_def``; train.json keys
``bundle_root``, ``device``, ``network``, ``train#trainer#max_epochs``, ``train#dataset#data``,
``validate#dataset#data``, ``train#handlers`` and run id ``run``.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional, Union

__all__ = [
    "export_bundle",
    "image_datalist",
    "read_source_settings",
    "inference_config",
    "train_config",
    "metadata_config",
]

#: Image file suffixes picked up when ``images`` (inference) is a folder.
IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd", ".dcm")
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
}
_DIVISOR = 32


def image_datalist(images: Union[str, os.PathLike, Sequence[Any]]) -> list[dict[str, str]]:
    """Datalist for inference: ``images`` is an image file, a folder of images, or a list of files / dicts.

    Raises:
        FileNotFoundError: a file or folder that does not exist.
        ValueError: no image found.
    """
    items: list[dict[str, str]] = []
    if isinstance(images, (str, os.PathLike)):
        path = Path(images)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.name.lower().endswith(IMAGE_SUFFIXES))
            items = [{"image": str(p)} for p in files]
        elif path.exists():
            items = [{"image": str(path)}]
        else:
            raise FileNotFoundError(f"images: {path} does not exist (give an image file, a folder or a list).")
    else:
        for entry in images:
            item = dict(entry) if isinstance(entry, Mapping) else {"image": str(entry)}
            if not Path(item["image"]).exists():
                raise FileNotFoundError(f"images: {item['image']} does not exist.")
            items.append(item)
    if not items:
        raise ValueError(f"images: no image ({', '.join(IMAGE_SUFFIXES)}) found in {images!s}.")
    return items


def _literal(value: Any) -> bool:
    """True for config values that are plain data (no ``$`` expression, no ``@`` reference anywhere)."""
    if isinstance(value, str):
        return not value.startswith(("$", "@", "%"))
    if isinstance(value, (list, tuple)):
        return all(_literal(v) for v in value)
    if isinstance(value, dict):
        return all(_literal(v) for v in value.values())
    return True


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
                    if key not in settings and key in config and _literal(config[key]):
                        settings[key] = config[key]
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


def _preprocessing(keys: Sequence[str], with_pad: bool) -> list[dict[str, Any]]:
    """Deterministic pre-processing shared by training and inference (the search bundle's, minus label checks)."""
    keys = list(keys)
    interp = ["bilinear" if k == "image" else "nearest" for k in keys]
    pre = [
        {"_target_": "LoadImaged", "keys": keys, "image_only": True},
        {"_target_": "EnsureChannelFirstd", "keys": keys},
        {"_target_": "Orientationd", "keys": keys, "axcodes": "RAS"},
        {
            "_target_": "Spacingd",
            "keys": keys,
            "pixdim": "@spacing",
            "mode": interp if len(keys) > 1 else interp[0],
            "_disabled_": "$@spacing is None",
        },
        {"_target_": "vnas_monai.data.transforms.ClipIntensityd", "keys": "image", "clip": "@intensity_clip"},
        {"_target_": "NormalizeIntensityd", "keys": "image"},
    ]
    if with_pad:
        pre.append({"_target_": "SpatialPadd", "keys": keys, "spatial_size": "@roi_size"})
    pre.append({"_target_": "EnsureTyped", "keys": keys})
    return pre


def _common(settings: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "bundle_root": ".",
        "device": "auto",
        "run_device": "$vnas_monai.engine.select_device(@device)",
        "arch_file": "$os.path.join(@bundle_root, 'models', 'arch.json')",
        "in_channels": settings["in_channels"],
        "num_classes": settings["num_classes"],
        "init_filters": settings["init_filters"],
        "intensity_clip": settings["intensity_clip"],
        "spacing": settings["spacing"],
        "network_def": {
            "_target_": "vnas_monai.networks.VNASNet",
            "spatial_dims": 3,
            "in_channels": "@in_channels",
            "out_channels": "@num_classes",
            "architecture": "@arch_file",
            "init_filters": "@init_filters",
        },
        "network": "$@network_def.to(@run_device)",
    }


_IMPORTS = ["$import os", "$import torch", "$import monai", "$import vnas_monai", "$import vnas_monai.engine"]


def inference_config(settings: Mapping[str, Any]) -> dict[str, Any]:
    """configs/inference.json: images -> ``<output_dir>/<name>_seg.nii.gz`` (run id ``run``)."""
    config: dict[str, Any] = {"imports": _IMPORTS + ["$import vnas_monai.bundle.export"]}
    config["_desc_"] = "V-NAS sliding-window inference; run id 'run'. Set images (file, folder or list) and output_dir."
    config.update(_common(settings))
    config.update(
        {
            "images": "$os.path.join(@bundle_root, 'sample_data')",
            "output_dir": "$os.path.join(@bundle_root, 'eval')",
            "output_postfix": "seg",
            "roi_size": settings["infer_roi_size"],
            "sw_batch_size": 1,
            "overlap": 0.25,
            "datalist": "$vnas_monai.bundle.export.image_datalist(@images)",
            "preprocessing": {"_target_": "Compose", "transforms": _preprocessing(["image"], with_pad=False)},
            "dataset": {"_target_": "Dataset", "data": "@datalist", "transform": "@preprocessing"},
            "dataloader": {
                "_target_": "DataLoader",
                "dataset": "@dataset",
                "batch_size": 1,
                "shuffle": False,
                "num_workers": 0,
            },
            "inferer": {
                "_target_": "SlidingWindowInferer",
                "roi_size": "@roi_size",
                "sw_batch_size": "@sw_batch_size",
                "overlap": "@overlap",
                "mode": "gaussian",
            },
            "postprocessing": {
                "_target_": "Compose",
                "transforms": [
                    {"_target_": "Activationsd", "keys": "pred", "softmax": True},
                    {
                        "_target_": "Invertd",
                        "keys": "pred",
                        "transform": "@preprocessing",
                        "orig_keys": "image",
                        "nearest_interp": False,
                        "to_tensor": True,
                    },
                    {"_target_": "AsDiscreted", "keys": "pred", "argmax": True},
                    {
                        "_target_": "SaveImaged",
                        "keys": "pred",
                        "output_dir": "@output_dir",
                        "output_postfix": "@output_postfix",
                        "output_dtype": "$numpy.uint8",
                        "resample": False,
                        "separate_folder": False,
                        "print_log": False,
                    },
                ],
            },
            "handlers": [
                {
                    "_target_": "CheckpointLoader",
                    "load_path": "$os.path.join(@bundle_root, 'models', 'model.pt')",
                    "load_dict": {"model": "@network"},
                    "map_location": "@run_device",
                },
                {"_target_": "StatsHandler", "iteration_log": False},
            ],
            "evaluator": {
                "_target_": "SupervisedEvaluator",
                "device": "@run_device",
                "val_data_loader": "@dataloader",
                "network": "@network",
                "inferer": "@inferer",
                "postprocessing": "@postprocessing",
                "val_handlers": "@handlers",
                "amp": False,
            },
            "initialize": ["$monai.utils.set_determinism(seed=0)"],
            "run": ["$@evaluator.run()"],
            "finalize": [],
        }
    )
    config["imports"].append("$import numpy")
    return config


def train_config(settings: Mapping[str, Any]) -> dict[str, Any]:
    """configs/train.json: supervised (re)training of the exported architecture (run id ``run``)."""
    config: dict[str, Any] = {"imports": _IMPORTS + ["$import vnas_monai.data"]}
    config["_desc_"] = (
        "Supervised training of the exported V-NAS architecture (SGD + poly decay, Dice+CE); run id 'run'. "
        "Set dataset_dir (MSD or NIH Pancreas-CT layout) or override train#dataset#data / validate#dataset#data."
    )
    config.update(_common(settings))
    config.update(
        {
            "dataset_dir": "$os.path.join(@bundle_root, 'data')",
            "layout": "auto",
            "val_fraction": 0.2,
            "seed": 0,
            "output_dir": "$os.path.join(@bundle_root, 'eval')",
            "ckpt_dir": "$os.path.join(@bundle_root, 'models')",
            "max_epochs": 100,
            "val_interval": 1,
            "roi_size": settings["roi_size"],
            "infer_roi_size": settings["infer_roi_size"],
            "batch_size": settings["batch_size"],
            "num_samples": settings["num_samples"],
            "num_workers": 2,
            "cache_rate": 1.0,
            "learning_rate": settings["learning_rate"],
            "amp": "$torch.cuda.is_available()",
            "splits": "$vnas_monai.data.split_train_val(vnas_monai.data.load_datalist(@dataset_dir, @layout), "
            "@val_fraction, @seed)",
            "loss": {"_target_": "DiceCELoss", "to_onehot_y": True, "softmax": True},
            "optimizer": {
                "_target_": "torch.optim.SGD",
                "params": "$@network.parameters()",
                "lr": "@learning_rate",
                "momentum": 0.9,
                "weight_decay": 0.0005,
            },
            "lr_scheduler": {
                "_target_": "vnas_monai.engine.PolyLR",
                "optimizer": "@optimizer",
                "total_iters": "$vnas_monai.engine.num_iterations(@train#trainer#max_epochs, @train#dataloader)",
                "power": 0.9,
            },
            "train": {
                "preprocessing": _preprocessing(["image", "label"], with_pad=True),
                "augmentation": [
                    {
                        "_target_": "RandCropByPosNegLabeld",
                        "keys": ["image", "label"],
                        "label_key": "label",
                        "spatial_size": "@roi_size",
                        "pos": 1,
                        "neg": 1,
                        "num_samples": "@num_samples",
                    },
                    {"_target_": "RandFlipd", "keys": ["image", "label"], "prob": 0.5, "spatial_axis": 0},
                    {"_target_": "RandFlipd", "keys": ["image", "label"], "prob": 0.5, "spatial_axis": 1},
                ],
                "transforms": {
                    "_target_": "Compose",
                    "transforms": "$@train#preprocessing + @train#augmentation",
                },
                "dataset": {
                    "_target_": "CacheDataset",
                    "data": "$@splits[0]",
                    "transform": "@train#transforms",
                    "cache_rate": "@cache_rate",
                    "num_workers": "@num_workers",
                    "progress": False,
                },
                "dataloader": {
                    "_target_": "DataLoader",
                    "dataset": "@train#dataset",
                    "batch_size": "@batch_size",
                    "shuffle": True,
                    "num_workers": "@num_workers",
                },
                "inferer": {"_target_": "SimpleInferer"},
                "postprocessing": {
                    "_target_": "Compose",
                    "transforms": [
                        {"_target_": "Activationsd", "keys": "pred", "softmax": True},
                        {
                            "_target_": "AsDiscreted",
                            "keys": ["pred", "label"],
                            "argmax": [True, False],
                            "to_onehot": "$[@num_classes, @num_classes]",
                        },
                    ],
                },
                "handlers": [
                    {
                        "_target_": "LrScheduleHandler",
                        "lr_scheduler": "@lr_scheduler",
                        "epoch_level": False,
                        "print_lr": False,
                    },
                    {
                        "_target_": "ValidationHandler",
                        "validator": "@validate#evaluator",
                        "epoch_level": True,
                        "interval": "@val_interval",
                    },
                    {
                        "_target_": "StatsHandler",
                        "tag_name": "train_loss",
                        "output_transform": "$monai.handlers.from_engine(['loss'], first=True)",
                    },
                    {
                        "_target_": "TensorBoardStatsHandler",
                        "log_dir": "@output_dir",
                        "tag_name": "train_loss",
                        "output_transform": "$monai.handlers.from_engine(['loss'], first=True)",
                    },
                ],
                "trainer": {
                    "_target_": "SupervisedTrainer",
                    "device": "@run_device",
                    "max_epochs": "@max_epochs",
                    "train_data_loader": "@train#dataloader",
                    "network": "@network",
                    "optimizer": "@optimizer",
                    "loss_function": "@loss",
                    "inferer": "@train#inferer",
                    "postprocessing": "@train#postprocessing",
                    "train_handlers": "@train#handlers",
                    "amp": "@amp",
                },
            },
            "validate": {
                "preprocessing": {
                    "_target_": "Compose",
                    "transforms": _preprocessing(["image", "label"], with_pad=False),
                },
                "dataset": {
                    "_target_": "CacheDataset",
                    "data": "$@splits[1]",
                    "transform": "@validate#preprocessing",
                    "cache_rate": "@cache_rate",
                    "num_workers": "@num_workers",
                    "progress": False,
                },
                "dataloader": {
                    "_target_": "DataLoader",
                    "dataset": "@validate#dataset",
                    "batch_size": 1,
                    "shuffle": False,
                    "num_workers": "@num_workers",
                },
                "inferer": {
                    "_target_": "SlidingWindowInferer",
                    "roi_size": "@infer_roi_size",
                    "sw_batch_size": 1,
                    "overlap": 0.25,
                },
                "postprocessing": "@train#postprocessing",
                "handlers": [
                    {"_target_": "StatsHandler", "iteration_log": False},
                    {
                        "_target_": "CheckpointSaver",
                        "save_dir": "@ckpt_dir",
                        "save_dict": {"model": "@network"},
                        "save_key_metric": True,
                        "key_metric_filename": "model.pt",
                    },
                ],
                "key_metric": {
                    "val_mean_dice": {
                        "_target_": "MeanDice",
                        "include_background": False,
                        "output_transform": "$monai.handlers.from_engine(['pred', 'label'])",
                    }
                },
                "evaluator": {
                    "_target_": "SupervisedEvaluator",
                    "device": "@run_device",
                    "val_data_loader": "@validate#dataloader",
                    "network": "@network",
                    "inferer": "@validate#inferer",
                    "postprocessing": "@validate#postprocessing",
                    "key_val_metric": "@validate#key_metric",
                    "val_handlers": "@validate#handlers",
                    "amp": "@amp",
                },
            },
            "initialize": ["$monai.utils.set_determinism(seed=@seed)"],
            "run": ["$@train#trainer.run()"],
            "finalize": [],
        }
    )
    return config


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("monai", "torch", "numpy", "vnas_monai", "nibabel", "itk", "pytorch-ignite", "fire"):
        try:
            out[name] = version(name).split("+")[0]
        except PackageNotFoundError:
            continue
    return out


def metadata_config(
    settings: Mapping[str, Any],
    source: Mapping[str, Any],
    labels: Mapping[str, str],
    arch: Any,
    version: str,
    name: Optional[str],
    modality: str,
    description: Optional[str],
    metrics: Optional[Mapping[str, Any]],
    changelog: Optional[str],
    task: Optional[str] = None,
    data_source: Optional[str] = None,
) -> dict[str, Any]:
    """configs/metadata.json in the MONAI model-zoo schema."""
    versions = _versions()
    enc, dec = arch.to_paper()
    source_inputs = source.get("network_data_format", {}).get("inputs", {})
    src_image = next(iter(source_inputs.values()), {}) if source_inputs else {}
    ct = modality.upper() == "CT"
    clip = settings["intensity_clip"]
    roi = list(settings["infer_roi_size"])
    meta: dict[str, Any] = {
        "schema": source.get(
            "schema",
            "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/meta_schema_20240725.json",
        ),
        "version": version,
        "changelog": {version: changelog or f"exported by vnas_monai {versions.get('vnas_monai', '')}".strip()},
        "monai_version": versions.get("monai", ""),
        "pytorch_version": versions.get("torch", ""),
        "numpy_version": versions.get("numpy", ""),
        "required_packages_version": {
            k: versions[k] for k in ("vnas_monai", "nibabel", "itk", "pytorch-ignite") if k in versions
        },
        "name": name or source.get("name", "V-NAS segmentation"),
        "task": task or source.get("task", f"{modality} segmentation of {', '.join(list(labels.values())[1:])}"),
        "description": description
        or (
            f"{source.get('description', 'V-NAS (Zhu et al., 3DV 2019) searched 2D/3D/P3D segmentation network.')} "
            f"Architecture (0=2D, 1=3D, 2=P3D): encoder [{enc}], decoder [{dec}]."
        ),
        "authors": source.get("authors", "vnas_monai developers"),
        "copyright": source.get("copyright", "Copyright (c) vnas_monai developers"),
        "data_source": data_source or source.get("data_source", "see docs/README.md"),
        "data_type": source.get("data_type", "nifti"),
        "image_classes": (
            f"single channel {modality} intensity"
            + (f", clipped to [{clip[0]}, {clip[1]}]" if clip else "")
            + " and z-normalised per case"
        ),
        "label_classes": ", ".join(f"{k}: {v}" for k, v in labels.items()),
        "pred_classes": ", ".join(f"{k}: {v}" for k, v in labels.items()),
        "intended_use": source.get("intended_use", "Research only"),
        "references": source.get(
            "references",
            ["Zhu, Z., et al.: V-NAS: Neural Architecture Search for Volumetric Medical Image Segmentation. 3DV 2019."],
        ),
        "network_data_format": {
            "inputs": {
                "image": {
                    "type": "image",
                    "format": "hounsfield" if ct else src_image.get("format", "magnitude"),
                    "modality": modality,
                    "num_channels": int(settings["in_channels"]),
                    "spatial_shape": roi,
                    "dtype": "float32",
                    "value_range": list(clip) if clip else [],
                    "is_patch_data": True,
                    "channel_def": {str(i): "image" for i in range(int(settings["in_channels"]))},
                }
            },
            "outputs": {
                "pred": {
                    "type": "image",
                    "format": "segmentation",
                    "num_channels": len(labels),
                    "spatial_shape": roi,
                    "dtype": "float32",
                    "value_range": [0, 1],
                    "is_patch_data": True,
                    "channel_def": dict(labels),
                }
            },
        },
    }
    if metrics:
        meta["eval_metrics"] = dict(metrics)
    return meta


def _readme(
    meta: Mapping[str, Any], settings: Mapping[str, Any], arch: Any, data_licence: str, bundle_name: str
) -> str:
    enc, dec = arch.to_paper()
    labels = meta["network_data_format"]["outputs"]["pred"]["channel_def"]
    metrics = meta.get("eval_metrics")
    results = (
        "\n".join(f"- {k}: {v}" for k, v in metrics.items())
        if metrics
        else "No evaluation was recorded for these weights at export time (`--metrics` was not given). "
        "Evaluate them on your own held-out cases before use; the paper reports a mean Dice of 85.15% on NIH "
        "Pancreas-CT (4-fold CV) for its searched architecture, which is not a measurement of this file."
    )
    clip = settings["intensity_clip"]
    steps = [f"{settings['in_channels']} channel(s) of {meta['network_data_format']['inputs']['image']['modality']}"]
    steps.append("reoriented to RAS")
    if settings["spacing"]:
        steps.append(f"resampled to {settings['spacing']} mm")
    if clip:
        steps.append(f"clipped to [{clip[0]}, {clip[1]}]")
    steps.append("z-normalised per case")
    input_line = ", ".join(steps)
    shape = str([1, settings["in_channels"], *settings["infer_roi_size"]])
    return f"""# {meta['name']}

{meta['description']}

## Model

- Network: `vnas_monai.networks.VNASNet` (V-NAS, Zhu et al., 3DV 2019), architecture in `models/arch.json`
  (0 = 2D, 1 = 3D, 2 = P3D): encoder [{enc}], decoder [{dec}]; stem width {settings['init_filters']}.
- Input: {input_line}.
- Output: {len(labels)} channels, {', '.join(f'{k} = {v}' for k, v in labels.items())}; the saved segmentation holds
  the argmax label value per voxel, in the input image's grid.
- Sliding window {settings['infer_roi_size']} (every patch size must be a multiple of 32).
- `models/model.pt` is a plain state dict (`torch.load(..., weights_only=True)`); the network refuses weights of
  another architecture with a `ValueError`, even when loaded with `strict=False`.

## Data

{meta['data_source']}

## Training

`configs/train.json` (run id `run`): MONAI `SupervisedTrainer`, Dice + cross-entropy loss, SGD (momentum 0.9,
weight decay 5e-4) with polynomial learning-rate decay (power 0.9), random {settings['roi_size']} patches
(positive/negative crops, flips), validation by sliding window; the best validation Dice is saved to
`models/model.pt`. `dataset_dir` is a dataset in the MSD layout (`dataset.json`, `imagesTr/`, `labelsTr/`) or
the NIH Pancreas-CT download layout; or override `train#dataset#data` and `validate#dataset#data` with datalists.
The exported weights come from the vnas_monai pipeline (architecture search, then retraining of the searched
architecture).

    python -m monai.bundle run --config_file configs/train.json --bundle_root . --dataset_dir /data/my_dataset

## Results

{results}

## Use

Requirements: `pip install vnas_monai` (it brings MONAI {meta['monai_version']} and PyTorch).

    # inference on an image, a folder of images or a list; writes <name>_seg.nii.gz into output_dir
    python -m monai.bundle run --config_file configs/inference.json --bundle_root . \\
        --images /data/case.nii.gz --output_dir ./eval
    # check the network's input/output contract
    python -m monai.bundle verify_net_in_out network_def --meta_file configs/metadata.json \\
        --config_file configs/inference.json
    # TorchScript (traced; scripting is not supported by the network)
    python -m monai.bundle ckpt_export network_def --filepath models/model.ts --ckpt_file models/model.pt \\
        --meta_file configs/metadata.json --config_file configs/inference.json --use_trace True \\
        --input_shape "{shape}"
    # ONNX (pip install onnx): TorchScript-based exporter, plain NCDHW conv3d (ONNX has no memory-format ops)
    python -m monai.bundle onnx_export network_def --filepath models/model.onnx --ckpt_file models/model.pt \\
        --meta_file configs/metadata.json --config_file configs/inference.json --use_trace True \\
        --input_shape "{shape}" --converter_kwargs "{{'dynamo': False}}" \\
        --network_def#conv_impl conv3d --network_def#memory_format preserve

MONAI Label (0.8.5, `monaibundle` app): copy this folder to `<app>/model/{bundle_name}/` and start the server with
`--conf models {bundle_name} --conf zoo_source local --conf sam2 false` (see vnas_monai docs/monailabel.md).

## Licence

The code and this bundle are released under the Apache License 2.0 (`LICENSE`). The weights were trained on
data with its own terms: {data_licence}

## Reference

{chr(10).join('- ' + r for r in meta['references'])}
"""


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

    from vnas_monai.bundle.templates import APACHE_2_0, LOGGING_CONF

    for sub in ("configs", "models", "docs"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu().clone() for k, v in net.state_dict().items()}, root / "models" / "model.pt")
    architecture.save(root / "models" / "arch.json")
    _write_json(root / "configs" / "inference.json", inference_config(settings))
    _write_json(root / "configs" / "train.json", train_config(settings))
    _write_json(root / "configs" / "metadata.json", meta)
    src_logging = Path(bundle_dir) / "logging.conf" if bundle_dir is not None else None
    logging_conf = src_logging.read_text() if src_logging is not None and src_logging.is_file() else LOGGING_CONF
    (root / "configs" / "logging.conf").write_text(logging_conf)
    (root / "LICENSE").write_text(APACHE_2_0)
    terms = data_licence or source.get("data_licence") or (
        "see the data source's terms of use (e.g. TCIA data usage policy for NIH Pancreas-CT, CC BY-SA 4.0 for the "
        "Medical Segmentation Decathlon)"
    )
    readme = _readme(meta, settings, architecture, terms, name)
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

        python -m vnas_monai export_bundle --bundle_dir bundles/vnas_nih --arch runs/vnas_nih/arch.json \\
            --checkpoint runs/vnas_nih/fold0/train/model.pt --output_dir vnas_nih_bundle

    Args:
        output_dir: the bundle folder to create (its name is the MONAI Label model name).
        checkpoint: trained weights: a plain state dict, or a MONAI checkpoint with it under ``network``/``model``.
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

    from vnas_monai.arch import Architecture
    from vnas_monai.bundle.utils import load_state_dict
    from vnas_monai.networks import VNASNet

    settings, source = read_source_settings(bundle_dir)
    for key, value in (("in_channels", in_channels), ("init_filters", init_filters), ("roi_size", roi_size)):
        if value is not None:
            settings[key] = value
    for key, value in (("intensity_clip", intensity_clip), ("spacing", spacing)):
        if value is False or (isinstance(value, str) and value.lower() in ("none", "off", "null", "false")):
            settings[key] = None
        elif value is not None:
            settings[key] = [float(v) for v in (value if isinstance(value, (list, tuple)) else [value] * 3)]
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

    state = load_state_dict(checkpoint)
    if arch is None:
        if "arch_code" not in state:
            raise ValueError(f"{checkpoint} has no arch_code: give --arch (the arch.json it was trained with).")
        code = torch.as_tensor(state["arch_code"]).tolist()
        architecture = Architecture(code[:16], code[16:])
    else:
        architecture = Architecture.resolve(arch)
    net = VNASNet(
        spatial_dims=3,
        in_channels=settings["in_channels"],
        out_channels=settings["num_classes"],
        architecture=architecture,
        init_filters=settings["init_filters"],
    )
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
