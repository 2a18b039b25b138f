"""The NAS-3D-U-Net bundles, ``bundles/nas3dunet_brats/*.json``, generated here (``tools/generate_bundles.py`` calls
:func:`write`), and the space's changes to an exported MONAI Label bundle (:func:`export_config`).

Wang, BraTS 2019: search (§2.4, Table 2: hybrid parameters on 1/5 of the training cases, kernel parameters on the
rest, alternately; stop rule N_C / N_E), retraining of the genotype, inference on auto-fitting patches (§2.3; or
MONAI's sliding window, key ``patching``) with sigmoid > 0.5 converted back to the layout's labels, and the
per-region evaluation of §3.5. Every stage normalises brain-wise (Eq. 1-2) with the statistics of the fold's
training cases; the region outputs follow the ``layout`` key (:mod:`vnas_monai.data.regions`). Same conventions as
the V-NAS bundles (:mod:`vnas_monai.bundle.configs`): the keys
``dataset_dir`` (null: the embedded multimodal phantoms), ``layout``, ``work_dir``, ``fold``, ``num_folds``, ``seed``,
``precision``, ``max_epochs``, ``epoch_length``, ``roi_size``, ``batch_size``, ``num_workers``, ``init_filters``;
outputs in ``<work_dir>/fold<k>/{search,train,infer,eval}``; run id ``search`` for the search, ``run`` elsewhere.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .network import network_def

__all__ = ["BUNDLE_NAME", "build_configs", "write"]

BUNDLE_NAME = "nas3dunet_brats"
P = "vnas_monai.spaces.nas3dunet.pipeline"
FOLD = "os.path.join(@work_dir, 'fold' + str(@fold)"
CKPT = f"${FOLD}, 'train', 'model.pt')"
IMPORTS = ["$import os", "$import numpy", "$import torch", "$import monai", "$import vnas_monai",
           "$import vnas_monai.engine", "$import vnas_monai.bundle", "$import vnas_monai.bundle.checks",
           "$import vnas_monai.bundle.errors", "$import vnas_monai.data.transforms", "$import vnas_monai.data.regions",
           "$import vnas_monai.data.brainnorm", "$import vnas_monai.spaces.nas3dunet",
           f"$import {P}", "$import vnas_monai.spaces.nas3dunet.evaluate",
           "$import vnas_monai.spaces.nas3dunet.exported"]
DATASET = {
    "dataset_dir": None, "layout": "brats", "work_dir": "runs/nas3dunet_brats", "fold": 0, "num_folds": 5,
    "max_cases": None, "seed": 0, "device": "auto", "precision": "auto", "num_workers": 0, "cache_rate": 1.0,
    "in_channels": 4, "num_regions": None, "init_filters": 2, "arch_fraction": 0.2, "phantom_cases": 8,
    "phantom_shape": [64, 64, 64], "check_keys": True, "debug": False, "extra_keys": [],
}
DERIVED = {
    "run_device": "$vnas_monai.engine.select_device(@device)",
    "dataset_root": f"${P}.resolve_brain_dataset(@dataset_dir, @work_dir, @layout, @phantom_cases, @phantom_shape, "
                    "@seed)",
    "splits": f"${P}.brain_splits(@dataset_root, @work_dir, @layout, @fold, @num_folds, @seed, @max_cases, "
              "@arch_fraction)",
    "regions": f"${P}.resolve_regions(@layout, @num_regions, @dataset_root)",
    "num_classes": "$len(@regions)",
}
#: ``patching``: "autofit" (the paper's auto-fitting patches over the brain cube, §2.3, averaged) or "sliding_window"
#: (MONAI's Gaussian-weighted sliding window with ``overlap``)
INFER = {"infer_roi_size": [64, 64, 64], "patching": "autofit", "overlap": 0.5, "sw_batch_size": 1, "threshold": 0.5}
INITIALIZE = ["$vnas_monai.bundle.errors.install_excepthook(debug=@debug)",
              "$vnas_monai.bundle.checks.check_config_keys(enabled=@check_keys)",
              "$monai.utils.set_determinism(seed=@seed)"]
SLIDING = {"_target_": "vnas_monai.engine.PrecisionInferer", "precision": "@precision",
           "inferer": {"_target_": "vnas_monai.data.autofit.patch_inferer", "patching": "@patching",
                       "roi_size": "@infer_roi_size", "sw_batch_size": "@sw_batch_size", "overlap": "@overlap"}}
SIGMOID = [{"_target_": "Activationsd", "keys": "pred", "sigmoid": True},
           {"_target_": "AsDiscreted", "keys": "pred", "threshold": "@threshold"}]
PROGRESS = {"_target_": "ignite.handlers.ProgressBar", "persist": True}


def load_transforms(labels: bool, mean: Any = "$@brain_stats['mean']", std: Any = "$@brain_stats['std']") -> list:
    """Load (one 4D file or one file per modality), channel first, RAS, brain-wise normalisation (Eq. 1-2)."""
    keys: Any = ["image", "label"] if labels else "image"
    return [{"_target_": "vnas_monai.data.transforms.CheckedLoadImaged", "keys": copy.copy(keys), "image_only": True},
            {"_target_": "EnsureChannelFirstd", "keys": copy.copy(keys)},
            {"_target_": "Orientationd", "keys": copy.copy(keys), "axcodes": "RAS", "labels": None},
            {"_target_": "vnas_monai.data.brainnorm.BrainWiseNormalized", "keys": "image", "mean": mean, "std": std},
            {"_target_": "EnsureTyped", "keys": copy.copy(keys)}]


def augmentation(roi: str = "@roi_size", layout: str = "@regions") -> list:
    """Random patches (half of them centred on the tumour), random flips, then the label map to its regions."""
    keys = ["image", "label"]
    return ([{"_target_": "SpatialPadd", "keys": keys, "spatial_size": roi},
             {"_target_": "RandCropByPosNegLabeld", "keys": keys, "label_key": "label", "spatial_size": roi,
              "pos": 1, "neg": 1, "num_samples": "@num_samples"}]
            + [{"_target_": "RandFlipd", "keys": keys, "prob": 0.5, "spatial_axis": a,
                "_disabled_": f"${a} not in vnas_monai.bundle.parse_flip_axes(@flip_axes)"} for a in range(3)]
            + [to_regions(layout)])


def to_regions(layout: str = "@regions") -> dict:
    return {"_target_": "vnas_monai.data.regions.LabelToRegionsd", "keys": "label", "layout": layout}


def loader(dataset: str, shuffle: bool, stream: int | None = None) -> dict:
    if stream is None:
        return {"_target_": "DataLoader", "dataset": dataset, "batch_size": 1, "shuffle": False,
                "num_workers": "@num_workers"}
    return {"_target_": "DataLoader",
            "dataset": {"_target_": "vnas_monai.engine.SeededDataset", "dataset": dataset, "seed": "@seed",
                        "stream": stream},
            "sampler": {"_target_": "vnas_monai.engine.SeededSampler", "dataset": dataset, "shuffle": shuffle,
                        "seed": "@seed"},
            "batch_size": "@batch_size", "shuffle": False, "num_workers": "@num_workers"}


def cache(data: str, transform: str) -> dict:
    return {"_target_": "CacheDataset", "data": data, "transform": transform, "cache_rate": "@cache_rate",
            "num_workers": "@num_workers", "progress": False}


def _top(stage: str, desc: str, keys: Mapping[str, Any]) -> dict:
    c: dict[str, Any] = {"imports": list(IMPORTS), "_desc_": desc, "bundle_root": "."}
    c.update(copy.deepcopy(DATASET))
    c["output_dir"] = f"${FOLD}, '{stage}')"
    c.update(copy.deepcopy(dict(keys)))
    c.update(DERIVED)
    return c


TRAINING = {"max_epochs": 4, "epoch_length": None, "roi_size": [64, 64, 64], "batch_size": 1, "num_samples": 1,
            "flip_axes": [0, 1, 2], "learning_rate": 0.001, "resume": True}
STATS = f"${P}.fold_brain_stats(@splits['trainval'], {FOLD}))"
RESUME = {"_target_": "vnas_monai.engine.ResumeCheckpointLoader", "ckpt_dir": "@output_dir",
          "load_dict": "@checkpoint_dict", "enabled": "@resume", "map_location": "@run_device"}
SAVER = {"_target_": "vnas_monai.engine.AtomicCheckpointSaver", "save_dir": "@output_dir",
         "save_dict": "@checkpoint_dict", "save_interval": 1, "epoch_level": True, "save_final": True,
         "final_filename": "checkpoint_final.pt", "n_saved": 1}
LOSS_OUT = "$monai.handlers.from_engine(['loss'], first=True)"


def search_config() -> dict:
    c = _top("search", "NAS-3D-U-Net search (Wang, BraTS 2019, §2.4, Table 2): the supernet's kernel parameters "
             "(Adam, learning_rate) on S_train and its hybrid parameters alpha (Adam, arch_learning_rate) on "
             "arch_fraction = 1/5 of the fold's training cases (S_val), alternately in every iteration; the "
             "GenotypeStopRule stops at the stop_n_c-th sighting of one derived genotype or after stop_n_e epochs. "
             "Writes genotype.json, genotype_cells.png (Fig. 6), arch.json with the alpha history and "
             "alpha_history.png. Defaults are CPU-sized (64^3 patches as the paper's search, init_filters 2, 4 "
             "epochs; the paper: init_filters = 4 modalities, N_E = 40, N_C = 100); run id 'search'.",
             {**TRAINING, "arch_learning_rate": 0.0003, "arch_warmup_epochs": 0, "stop_n_c": 3, "stop_n_e": None,
              "mix": False})
    c["brain_stats"] = STATS
    c["network_def"] = {"_target_": "vnas_monai.spaces.nas3dunet.NAS3DUNetSupernet",
                        "_requires_": "$monai.utils.set_determinism(seed=@seed)", "spatial_dims": 3,
                        "in_channels": "@in_channels", "out_channels": "@num_classes", "init_filters": "@init_filters",
                        "mix": "@mix"}
    c["network"] = "$@network_def.to(@run_device)"
    c["loss_function"] = {"_target_": "vnas_monai.spaces.nas3dunet.RegionDiceLoss"}
    c["optimizer"] = {"_target_": "torch.optim.Adam", "params": "$@network.weight_parameters()",
                      "lr": "@learning_rate", "weight_decay": 1e-5}
    c["arch_optimizer"] = {"_target_": "torch.optim.Adam", "params": "$@network.arch_parameters()",
                           "lr": "@arch_learning_rate", "betas": [0.5, 0.999], "weight_decay": 0.001}
    c["preprocessing"] = load_transforms(True)
    c["augmentation"] = augmentation()
    c["train_transforms"] = {"_target_": "Compose", "transforms": "$@preprocessing + @augmentation"}
    c["train"] = {
        "dataset": cache("$@splits['train']", "@train_transforms"),
        "dataloader": loader("@train#dataset", True, 0),
        "handlers": [{"_target_": "StatsHandler", "tag_name": "train_loss",
                      "output_transform": "$vnas_monai.engine.search_losses"}, PROGRESS],
        "trainer": {"_target_": "vnas_monai.engine.VNASSearchTrainer", "device": "@run_device",
                    "max_epochs": "@max_epochs", "epoch_length": "@epoch_length",
                    "train_data_loader": "@train#dataloader", "arch_data_loader": "@val_data#dataloader",
                    "network": "@network", "optimizer": "@optimizer", "arch_optimizer": "@arch_optimizer",
                    "arch_warmup_epochs": "@arch_warmup_epochs", "loss_function": "@loss_function",
                    "precision": "@precision", "train_handlers": "@train#handlers"}}
    c["val_data"] = {"dataset": cache("$@splits['val']", "@train_transforms"),
                     "dataloader": loader("@val_data#dataset", True, 1)}
    c["stop_rule"] = {"_target_": "vnas_monai.engine.stop_rule.GenotypeStopRule", "n_c": "@stop_n_c",
                      "n_e": "@stop_n_e", "output_dir": "@output_dir"}
    c["arch_logger"] = {"_target_": "vnas_monai.engine.ArchitectureLogger", "output_dir": "@output_dir",
                        "png": "alpha_history.png", "space": "nas3dunet"}
    c["checkpoint_dict"] = {"network": "@network", "optimizer": "@optimizer", "arch_optimizer": "@arch_optimizer",
                            "trainer": "@train#trainer", "arch_logger": "@arch_logger", "stop_rule": "@stop_rule"}
    c["checkpoint_loader"] = dict(RESUME)
    c["checkpoint_saver"] = dict(SAVER)
    c["initialize"] = list(INITIALIZE)
    c["search"] = ["$@checkpoint_loader.attach(@train#trainer)", "$@arch_logger.attach(@train#trainer)",
                   "$@stop_rule.attach(@train#trainer)", "$@checkpoint_saver.attach(@train#trainer)",
                   "$@train#trainer.run()", "$vnas_monai.bundle.prune_checkpoints(@output_dir)",
                   f"${P}.finish_search(@stop_rule, @network, @output_dir)"]
    c["run"] = "@search"
    c["finalize"] = []
    return c


SETTINGS = ("$vnas_monai.bundle.save_run_settings(@output_dir, architecture=@architecture, in_channels=@in_channels, "
            "num_classes=@num_classes, init_filters=@init_filters, class_names=@regions.names, "
            "region_names=@regions.names, layout=@layout, num_regions=len(@regions), "
            "output_labels=vnas_monai.spaces.nas3dunet.exported.output_labels(@regions), "
            "brain_stats={'mean': @brain_stats['mean'], 'std': @brain_stats['std']}, intensity_clip=None, "
            "spacing=None, roi_size=@roi_size, infer_roi_size=@infer_roi_size, "
            "flip_axes=vnas_monai.bundle.parse_flip_axes(@flip_axes))")


def _validator(data: str, transforms: str) -> dict:
    return {"dataset": cache(data, transforms), "dataloader": loader("@validate#dataset", False),
            "inferer": copy.deepcopy(SLIDING),
            "postprocessing": {"_target_": "Compose", "transforms": copy.deepcopy(SIGMOID)}}


def train_config() -> dict:
    c = _top("train", "Retraining of the searched NAS-3D-U-Net genotype from scratch on the fold's S_train + S_val "
             "(Wang, BraTS 2019, §2.4), with the region Dice loss (Eq. 3) on sigmoid outputs, validated by "
             "MONAI Dice per region on S_val over auto-fitting patches (key patching); genotype null reads "
             "<work_dir>/fold<k>/search/genotype.json. The paper trains on 128^3 patches (roi_size) for 200 epochs; "
             "run id 'run'.",
             {**TRAINING, "genotype": None, "train_split": "trainval", "val_interval": 2, **INFER})
    c["brain_stats"] = STATS
    c["architecture"] = (f"$vnas_monai.spaces.nas3dunet.Genotype.resolve(@genotype or {FOLD}, 'search', "
                         "'genotype.json'))")
    c["network_def"] = network_def()
    c["network"] = "$@network_def.to(@run_device)"
    c["loss_function"] = {"_target_": "vnas_monai.spaces.nas3dunet.RegionDiceLoss"}
    c["optimizer"] = {"_target_": "torch.optim.Adam", "params": "$@network.parameters()", "lr": "@learning_rate",
                      "weight_decay": 1e-5}
    c["lr_scheduler"] = {"_target_": "vnas_monai.engine.PolyLR", "optimizer": "@optimizer", "power": 0.9,
                         "total_iters": "$vnas_monai.engine.num_iterations(@train#trainer#max_epochs, "
                                        "@train#dataloader, @epoch_length)"}
    c["preprocessing"] = load_transforms(True)
    c["augmentation"] = augmentation()
    c["train_transforms"] = {"_target_": "Compose", "transforms": "$@preprocessing + @augmentation"}
    c["val_transforms"] = {"_target_": "Compose", "transforms": "$@preprocessing + [@val_regions]"}
    c["val_regions"] = to_regions()
    c["train"] = {
        "dataset": cache("$vnas_monai.data.training_cases(@splits, @train_split)", "@train_transforms"),
        "dataloader": loader("@train#dataset", True, 0),
        "inferer": {"_target_": "SimpleInferer"},
        "handlers": [{"_target_": "LrScheduleHandler", "lr_scheduler": "@lr_scheduler", "epoch_level": False,
                      "print_lr": False},
                     {"_target_": "ValidationHandler", "validator": "@validate#evaluator", "epoch_level": True,
                      "interval": "@val_interval"},
                     {"_target_": "StatsHandler", "tag_name": "train_loss", "output_transform": LOSS_OUT}, PROGRESS],
        "trainer": {"_target_": "vnas_monai.engine.PrecisionTrainer", "device": "@run_device",
                    "max_epochs": "@max_epochs", "epoch_length": "@epoch_length",
                    "train_data_loader": "@train#dataloader", "network": "@network", "optimizer": "@optimizer",
                    "loss_function": "@loss_function", "inferer": "@train#inferer", "precision": "@precision",
                    "train_handlers": "@train#handlers"}}
    v = _validator("$@splits['val']", "@val_transforms")
    v["key_metric"] = {"val_mean_dice": {"_target_": "MeanDice", "include_background": True,
                                         "output_transform": "$monai.handlers.from_engine(['pred', 'label'])"}}
    v["additional_metrics"] = f"${P}.region_dice_metrics(@regions.names)"
    v["handlers"] = [{"_target_": "StatsHandler", "iteration_log": False}, "@best_saver"]
    v["evaluator"] = {"_target_": "SupervisedEvaluator", "device": "@run_device",
                      "val_data_loader": "@validate#dataloader", "network": "@network", "inferer": "@validate#inferer",
                      "postprocessing": "@validate#postprocessing", "key_val_metric": "@validate#key_metric",
                      "additional_metrics": "@validate#additional_metrics", "val_handlers": "@validate#handlers"}
    c["validate"] = v
    c["best_saver"] = {"_target_": "CheckpointSaver", "save_dir": "@output_dir", "save_dict": {"model": "@network"},
                       "save_key_metric": True, "key_metric_filename": "model.pt"}
    c["checkpoint_dict"] = {"network": "@network", "optimizer": "@optimizer", "lr_scheduler": "@lr_scheduler",
                            "trainer": "@train#trainer", "best_model": "$@best_saver._key_metric_checkpoint"}
    c["checkpoint_loader"] = dict(RESUME)
    c["checkpoint_saver"] = dict(SAVER)
    c["final_saver"] = {"_target_": "vnas_monai.engine.AtomicCheckpointSaver", "save_dir": "@output_dir",
                        "save_dict": {"model": "@network"}, "save_final": True, "final_filename": "model_final.pt"}
    c["initialize"] = list(INITIALIZE)
    c["run"] = ["$@architecture.save(os.path.join(@output_dir, 'genotype.json'))", SETTINGS,
                "$@checkpoint_loader.attach(@train#trainer)", "$@checkpoint_saver.attach(@train#trainer)",
                "$@final_saver.attach(@train#trainer)", "$vnas_monai.engine.restart_data_each_epoch(@train#trainer)",
                "$@train#trainer.run()",
                "$vnas_monai.bundle.validate_at_end(@train#trainer, @validate#evaluator, @val_interval)",
                "$vnas_monai.bundle.prune_checkpoints(@output_dir)",
                "$print('retrained', @architecture.summary(), '->', os.path.join(@output_dir, 'model.pt'))"]
    c["finalize"] = []
    return c


RUN_KEYS = {"checkpoint": CKPT, "genotype": None, **INFER}


def _from_run(c: dict) -> dict:
    """Inference / evaluation: the network's settings come from the training run beside ``checkpoint``."""
    for key in ("in_channels", "init_filters", "layout", "num_regions"):
        c[key] = f"$vnas_monai.bundle.stored_setting(@checkpoint, '{key}', {c[key]!r})"
    c["brain_stats"] = f"${P}.run_brain_stats(@checkpoint)"
    c["architecture"] = f"${P}.run_genotype(@checkpoint, @genotype)"
    c["network_def"] = network_def()
    c["network"] = ("$vnas_monai.bundle.load_weights(@network_def, @checkpoint, map_location=@run_device)"
                    ".to(@run_device)")
    c["inferer"] = copy.deepcopy(SLIDING)
    c["initialize"] = list(INITIALIZE)
    c["finalize"] = []
    return c


def _evaluator() -> dict:
    return {"_target_": "SupervisedEvaluator", "device": "@run_device", "val_data_loader": "@dataloader",
            "network": "@network", "inferer": "@inferer", "postprocessing": "@postprocessing",
            "val_handlers": "@handlers"}


def inference_config() -> dict:
    c = _top("infer", "Sliding-window inference of a retrained NAS-3D-U-Net: sigmoid > threshold per region, the "
             "regions painted back as the layout's labels (BraTS 1/2/4, MSD 1/2/3, generic 1..R), written as "
             "<output_dir>/<case>/<case>_seg.nii.gz on the input's grid (shape and affine); images: a file, a BraTS "
             "case folder or a list, else input_dir, else the fold's S_test; run id 'run'.",
             {**RUN_KEYS, "images": None, "input_dir": None})
    c["output_dir"] = "$vnas_monai.bundle.stage_dir(@checkpoint, 'infer')"
    c["splits_fn"] = "$lambda: " + DERIVED["splits"][1:]
    c["datalist"] = f"${P}.inference_cases(@images, @input_dir, @splits_fn, @layout)"
    c["preprocessing"] = {"_target_": "Compose", "transforms": load_transforms(False)}
    c["dataset"] = {"_target_": "Dataset", "data": "@datalist", "transform": "@preprocessing"}
    c["dataloader"] = loader("@dataset", False)
    c["postprocessing"] = {"_target_": "Compose", "transforms": [
        {"_target_": "Activationsd", "keys": "pred", "sigmoid": True},
        {"_target_": "Invertd", "keys": "pred", "transform": "@preprocessing", "orig_keys": "image",
         "nearest_interp": False, "to_tensor": True},
        {"_target_": "vnas_monai.data.regions.RegionsToLabeld", "keys": "pred", "layout": "@regions",
         "threshold": "@threshold"},
        {"_target_": "SaveImaged", "keys": "pred", "output_dir": "@output_dir", "output_postfix": "seg",
         "output_dtype": "$numpy.uint8", "resample": False, "separate_folder": True, "print_log": False,
         "output_name_formatter": f"${P}.brain_case_formatter"}]}
    c["handlers"] = [{"_target_": "StatsHandler", "iteration_log": False}, PROGRESS]
    c["evaluator"] = _evaluator()
    _from_run(c)
    c["run"] = ["$@evaluator.run()", "$print('segmentations written to', @output_dir)"]
    return c


def evaluate_config() -> dict:
    c = _top("eval", "Evaluation of a retrained NAS-3D-U-Net on the fold's S_test (Wang, BraTS 2019, §3.5): Dice, "
             "sensitivity, specificity and HD95 per region (metrics.csv, metrics.json per case; summary.json); "
             "run id 'run'.", {**RUN_KEYS, "eval_split": "test"})
    c["output_dir"] = "$vnas_monai.bundle.stage_dir(@checkpoint, 'eval')"
    c["datalist"] = "$vnas_monai.bundle.evaluation_datalist(@splits, @eval_split)"
    c["preprocessing"] = {"_target_": "Compose", "transforms": "$@load + [@regions_transform]"}
    c["load"] = load_transforms(True)
    c["regions_transform"] = to_regions()
    c["dataset"] = {"_target_": "Dataset", "data": "@datalist", "transform": "@preprocessing"}
    c["dataloader"] = loader("@dataset", False)
    c["postprocessing"] = {"_target_": "Compose", "transforms": copy.deepcopy(SIGMOID)}
    c["metrics_writer"] = {"_target_": "vnas_monai.spaces.nas3dunet.evaluate.RegionMetricsWriter",
                           "output_dir": "@output_dir", "region_names": "$@regions.names",
                           "title": "$'NAS-3D-U-Net evaluation, fold ' + str(@fold) + ' (S_' + @eval_split + ')'",
                           "settings": {"checkpoint": "$str(@checkpoint)", "fold": "@fold", "split": "@eval_split",
                                        "layout": "@layout", "genotype": "$@architecture.to_dict()",
                                        "infer_roi_size": "@infer_roi_size", "threshold": "@threshold"}}
    c["handlers"] = ["@metrics_writer", PROGRESS]
    c["evaluator"] = _evaluator()
    _from_run(c)
    c["run"] = ["$@evaluator.run()", "$print('metrics written to', @output_dir)"]
    return c


def metadata() -> dict:
    from .exported import bundle_metadata

    return bundle_metadata()


def build_configs() -> dict[str, dict]:
    """Every file of ``bundles/nas3dunet_brats`` but ``logging.conf``: ``{file name: config}``."""
    from .overlays import multi_gpu_search, multi_gpu_train

    return {"search.json": search_config(), "train.json": train_config(), "inference.json": inference_config(),
            "evaluate.json": evaluate_config(), "multi_gpu_search.json": multi_gpu_search(),
            "multi_gpu_train.json": multi_gpu_train(), "metadata.json": metadata()}


def write(root: str | os.PathLike) -> Path:
    """Write ``<root>/nas3dunet_brats/*.json`` (and ``logging.conf``, the exporter's template); returns the folder."""
    from vnas_monai.export.templates import logging_conf

    out = Path(root) / BUNDLE_NAME
    out.mkdir(parents=True, exist_ok=True)
    for name, config in build_configs().items():
        (out / name).write_text(json.dumps(config, indent=4) + "\n")
    (out / "logging.conf").write_text(logging_conf())
    return out
