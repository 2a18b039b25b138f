"""The configs of an exported bundle: ``configs/inference.json`` and ``configs/train.json`` (model-zoo keys).

The network is the space's own ``network_def`` (:class:`vnas_monai.spaces.BundleNetwork`), the preprocessing that of
the pipeline's stages (:func:`vnas_monai.bundle.configs.preprocessing`). Built from the source bundle's literal
settings (:func:`vnas_monai.export.source.read_source_settings`); every path goes through ``@bundle_root`` and the
device is chosen at run time, so the exported bundle stands on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vnas_monai.bundle.configs import preprocessing
from vnas_monai.spaces import BundleNetwork

__all__ = ["inference_config", "network_keys", "train_config"]

#: the bundle keys every exported config defines for the space's ``network_def``
_GENERIC_KEYS = ("in_channels", "num_classes", "init_filters")


def network_keys(network: BundleNetwork) -> list[str]:
    """The bundle keys that the space's ``network_def`` refers to beyond the generic ``in_channels``, ``num_classes``
    and ``init_filters`` (``"@spatial_dims"`` gives ``spatial_dims``), in its order: the export takes them from the
    run's settings (the space's ``settings_keys``) and writes them into the configs beside the generic ones."""
    entry = network.network_def("@arch_file")
    refs = [v[1:] for v in entry.values() if isinstance(v, str) and v.startswith("@") and v != "@arch_file"]
    return [key for key in refs if key not in _GENERIC_KEYS]


def _common(settings: Mapping[str, Any], network: BundleNetwork) -> dict[str, Any]:
    return {
        "bundle_root": ".",
        "device": "auto",
        "precision": settings.get("precision", "auto"),
        "run_device": "$vnas_monai.engine.select_device(@device)",
        "arch_file": "$os.path.join(@bundle_root, 'models', 'arch.json')",
        "in_channels": settings["in_channels"],
        "num_classes": settings["num_classes"],
        "init_filters": settings["init_filters"],
        **{key: settings[key] for key in network_keys(network)},
        "intensity_clip": settings["intensity_clip"],
        "spacing": settings["spacing"],
        "network_def": network.network_def("@arch_file"),
        "network": "$@network_def.to(@run_device)",
    }


_IMPORTS = ["$import os", "$import torch", "$import monai", "$import vnas_monai", "$import vnas_monai.engine"]


def inference_config(settings: Mapping[str, Any], network: BundleNetwork) -> dict[str, Any]:
    """configs/inference.json: images -> ``<output_dir>/<name>_seg.nii.gz`` (run id ``run``).

    Args:
        settings: the exported settings (``in_channels``, ``num_classes``, ``init_filters``, ``intensity_clip``,
            ``spacing``, ``infer_roi_size``...).
        network: the space's :class:`vnas_monai.spaces.BundleNetwork` (its ``network_def`` and title).
    """
    config: dict[str, Any] = {"imports": _IMPORTS + ["$import vnas_monai.bundle.export"]}
    config["_desc_"] = (
        f"{network.title} sliding-window inference; run id 'run'. Set images (file, folder or list) and output_dir."
    )
    config.update(_common(settings, network))
    config.update(
        {
            "images": "$os.path.join(@bundle_root, 'sample_data')",
            "output_dir": "$os.path.join(@bundle_root, 'eval')",
            "output_postfix": "seg",
            "roi_size": settings["infer_roi_size"],
            "sw_batch_size": 1,
            "overlap": 0.25,
            # the network compiled with frozen weights (vnas_monai.engine.InferenceCompiler): faster after a first
            # call that compiles; off by default
            "compile": False,
            "datalist": "$vnas_monai.bundle.export.image_datalist(@images)",
            "preprocessing": {"_target_": "Compose", "transforms": preprocessing(labels=False, pad=False)},
            "dataset": {"_target_": "Dataset", "data": "@datalist", "transform": "@preprocessing"},
            "dataloader": {
                "_target_": "DataLoader",
                "dataset": "@dataset",
                "batch_size": 1,
                "shuffle": False,
                "num_workers": 0,
            },
            # MONAI Label calls inferer(inputs, network) itself: the precision lives in the inferer
            "inferer": {
                "_target_": "vnas_monai.engine.PrecisionInferer",
                "precision": "@precision",
                "compile": "@compile",
                "inferer": {
                    "_target_": "SlidingWindowInferer",
                    "roi_size": "@roi_size",
                    "sw_batch_size": "@sw_batch_size",
                    "overlap": "@overlap",
                    "mode": "gaussian",
                },
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
            },
            "initialize": ["$monai.utils.set_determinism(seed=0)"],
            "run": ["$@evaluator.run()"],
            "finalize": [],
        }
    )
    config["imports"].append("$import numpy")
    return config


def train_config(settings: Mapping[str, Any], network: BundleNetwork) -> dict[str, Any]:
    """configs/train.json: supervised (re)training of the exported architecture (run id ``run``); arguments as
    :func:`inference_config` (with ``roi_size``, ``batch_size``, ``num_samples``, ``flip_axes``, ``learning_rate``)."""
    config: dict[str, Any] = {"imports": _IMPORTS + ["$import vnas_monai.data", "$import vnas_monai.bundle"]}
    config["_desc_"] = (
        f"Supervised training of the exported {network.title} architecture (SGD + poly decay, Dice+CE); run id 'run'. "
        "Set dataset_dir (MSD or NIH Pancreas-CT layout) or override train#dataset#data / validate#dataset#data."
    )
    config.update(_common(settings, network))
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
            "flip_axes": list(settings["flip_axes"]),
            "num_workers": 2,
            "cache_rate": 1.0,
            "learning_rate": settings["learning_rate"],
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
                "preprocessing": preprocessing(labels=True, pad=True, label_checks=False),
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
                ]
                + [
                    {
                        "_target_": "RandFlipd",
                        "keys": ["image", "label"],
                        "prob": 0.5,
                        "spatial_axis": axis,
                        "_disabled_": f"${axis} not in vnas_monai.bundle.parse_flip_axes(@flip_axes)",
                    }
                    for axis in range(3)
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
                    "_target_": "vnas_monai.engine.PrecisionTrainer",
                    "device": "@run_device",
                    "max_epochs": "@max_epochs",
                    "train_data_loader": "@train#dataloader",
                    "network": "@network",
                    "optimizer": "@optimizer",
                    "loss_function": "@loss",
                    "inferer": "@train#inferer",
                    "postprocessing": "@train#postprocessing",
                    "train_handlers": "@train#handlers",
                    "precision": "@precision",
                },
            },
            "validate": {
                "preprocessing": {
                    "_target_": "Compose",
                    "transforms": preprocessing(labels=True, pad=False, label_checks=False),
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
                    "_target_": "vnas_monai.engine.PrecisionInferer",
                    "precision": "@precision",
                    "inferer": {
                        "_target_": "SlidingWindowInferer",
                        "roi_size": "@infer_roi_size",
                        "sw_batch_size": 1,
                        "overlap": 0.25,
                    },
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
                },
            },
            "initialize": ["$monai.utils.set_determinism(seed=@seed)"],
            "run": ["$@train#trainer.run()"],
            "finalize": [],
        }
    )
    return config
