"""The MB-NAS bundle configs (``bundles/mbnas_spleen``: MSD Task09, 1-channel CT; ``bundles/mbnas_prostate``: MSD
Task05, 2-channel MRI), written by :func:`write_bundle` (``python -m vnas_monai.spaces.mbnas.bundles``), so that the
four stages of both bundles share their keys (Bosma et al., SPIE 2022, §2.3-§3).

* ``search.json`` (run id ``search``, or ``run``): a local search (:func:`.workflow.run_search`) of the
  ``restriction`` (``mbnas`` | ``micro`` | ``macro`` | ``bilevel``) from the U-Net, ``max_evaluations``
  encodings, each the mean of ``search_folds`` x ``search_seeds`` trials (:class:`.trial.SliceTrial`) on the fold's
  S_train + S_val; trials in process, on a Dask ``LocalCluster`` (``n_workers``) or on a running scheduler
  (``scheduler``: ``"tcp://host:8786"``);
* ``train.json`` (``run``): the best encoding retrained from scratch on S_train + S_val (:func:`.workflow.retrain`);
* ``inference.json`` (``run``): MONAI ``SliceInferer`` of the 2D network over each 3D volume, the segmentation
  written by ``SaveImaged`` on the input's grid (shape and affine, after ``Invertd``);
* ``evaluate.json`` (``run``): Dice, HD95 and surface Dice (2 mm, Table 1) of S_test on the label files' grid
  (:class:`vnas_monai.evaluation.SegmentationMetricsWriter`).

With ``dataset_dir`` null every stage uses phantoms (CT-like for spleen, 2-channel MRI-like for prostate) and the
small settings after ``else`` in the ``$... if @dataset_dir else ...`` keys, so that the search runs offline in a few
CPU minutes; with a dataset the paper's settings apply (128 x 128 slices, batch 32, 150 evaluations).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["BUNDLES", "bundle_configs", "write_bundle"]

_IMPORTS = ["$import os", "$import torch", "$import monai", "$import numpy", "$import vnas_monai",
            "$import vnas_monai.data", "$import vnas_monai.data.slices", "$import vnas_monai.engine",
            "$import vnas_monai.bundle", "$import vnas_monai.bundle.errors", "$import vnas_monai.spaces.mbnas",
            "$import vnas_monai.spaces.mbnas.trial", "$import vnas_monai.spaces.mbnas.workflow"]

#: per bundle: the dataset's keys and metadata words
BUNDLES: dict[str, dict[str, Any]] = {
    "mbnas_spleen": {
        "task": "MSD Task09 spleen", "in_channels": 1, "num_classes": 2, "intensity_clip": [-125, 275],
        "modality": "CT", "labels": {"0": "background", "1": "spleen"},
        "data_source": "Medical Segmentation Decathlon Task09_Spleen, 41 portal-venous CT volumes",
        "image_classes": "single channel CT in HU, clipped to [-125, 275] and z-normalised per case",
        "channel_def": {"0": "image"}, "paper_dice": 0.9592,
    },
    "mbnas_prostate": {
        "task": "MSD Task05 prostate", "in_channels": 2, "num_classes": 3, "intensity_clip": None,
        "modality": "MR", "labels": {"0": "background", "1": "peripheral zone", "2": "transition zone"},
        "data_source": "Medical Segmentation Decathlon Task05_Prostate, 32 multiparametric MRI volumes (T2, ADC)",
        "image_classes": "two channel MRI (T2, ADC), z-normalised per channel and case",
        "channel_def": {"0": "T2", "1": "ADC"}, "paper_dice": 0.6760,
    },
}

_PHANTOM = "if @dataset_dir else"


def _common(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "bundle_root": ".",
        "dataset_dir": None,
        "layout": "auto",
        "work_dir": f"runs/{name}",
        "datalist_file": "$os.path.join(@work_dir, 'folds.json') if @dataset_dir else None",
        "fold": 0,
        "num_folds": 4,
        "max_cases": None,
        "seed": 0,
        "device": "auto",
        "precision": "auto",
        "num_workers": 0,
        "debug": False,
        "phantom_cases": 8,
        "phantom_shape": [64, 64, 16],
        "phantom_dir": "$os.path.join(@work_dir, 'fold' + str(@fold), 'search')",
        "run_device": "$vnas_monai.engine.select_device(@device)",
    }


def _recipe(spec: dict[str, Any]) -> dict[str, Any]:
    """The keys of the training recipe (search and train)."""
    return {
        "in_channels": spec["in_channels"],
        "num_classes": spec["num_classes"],
        "class_names": "auto",
        "intensity_clip": spec["intensity_clip"],
        "spatial_dims": 2,
        "slice_size": f"$[128, 128] {_PHANTOM} [64, 64]",
        "patch_size": f"$[128, 128] {_PHANTOM} [64, 64]",
        "batch_size": f"$32 {_PHANTOM} 16",
        "init_channels": f"$16 {_PHANTOM} 8",
        "num_nodes": 10,
        "max_downsamplings": 4,
        "learning_rate": 0.001,
        "epochs": f"$50 {_PHANTOM} 8",
        "steps_per_epoch": f"$None {_PHANTOM} 6",
        "max_seconds": None,
        "background_fraction": 0.1,
        "flip_axes": [0],
        "num_search_folds": f"$5 {_PHANTOM} 3",
        "dataset_root": "$vnas_monai.spaces.mbnas.workflow.resolve_dataset(@dataset_dir, @phantom_dir, @in_channels, "
                        "@num_classes, @phantom_cases, @phantom_shape)",
        "splits": "$vnas_monai.spaces.mbnas.workflow.fold_splits(@dataset_root, @fold, @num_folds, @seed, "
                  "@datalist_file, @layout, @max_cases)",
        "trial": {
            "_target_": "vnas_monai.spaces.mbnas.trial.SliceTrial",
            "cases": "$@splits['trainval']",
            **{k: f"@{k}" for k in ("in_channels", "num_classes", "spatial_dims", "patch_size", "slice_size",
                                    "intensity_clip", "batch_size", "learning_rate", "epochs", "steps_per_epoch",
                                    "max_seconds", "init_channels", "background_fraction", "flip_axes", "device",
                                    "precision", "num_workers")},
            "num_folds": "@num_search_folds",
            "fold_seed": "@seed",
        },
    }


def _stored(key: str, default: Any) -> str:
    return f"$vnas_monai.bundle.stored_setting(@checkpoint, '{key}', {default!r})"


def _run_stage(spec: dict[str, Any], labels: bool) -> dict[str, Any]:
    """The keys inference and evaluation share: the trained run's settings, network and inferer."""
    return {
        "checkpoint": "$os.path.join(@work_dir, 'fold' + str(@fold), 'train', 'model.pt')",
        "arch": "$os.path.join(os.path.dirname(@checkpoint), 'arch.json')",
        "spatial_dims": _stored("spatial_dims", 2),
        "in_channels": _stored("in_channels", spec["in_channels"]),
        "num_classes": _stored("num_classes", spec["num_classes"]),
        "init_channels": _stored("init_channels", 16),
        "patch_size": _stored("patch_size", [128, 128]),
        "slice_size": _stored("slice_size", None),
        "intensity_clip": _stored("intensity_clip", spec["intensity_clip"]),
        "sw_batch_size": 32,
        "overlap": 0.0,
        "network_def": {"_target_": "vnas_monai.spaces.mbnas.network.MBNASNet", "encoding": "@arch",
                        "spatial_dims": "@spatial_dims", "in_channels": "@in_channels",
                        "out_channels": "@num_classes", "init_channels": "@init_channels"},
        "network": "$vnas_monai.bundle.load_weights(@network_def, @checkpoint, map_location=@run_device)"
                   ".to(@run_device)",
        "preprocessing": {"_target_": "Compose", "transforms": f"$vnas_monai.data.slices.volume_transforms(label="
                          f"{labels}, slice_size=@slice_size, intensity_clip=@intensity_clip, resize_label=False)"},
        "dataset": {"_target_": "Dataset", "data": "@datalist", "transform": "@preprocessing"},
        "dataloader": {"_target_": "DataLoader", "dataset": "@dataset", "batch_size": 1, "shuffle": False,
                       "num_workers": "@num_workers"},
        "inferer": "$vnas_monai.spaces.mbnas.workflow.make_inferer(@spatial_dims, @patch_size, @sw_batch_size, "
                   "@overlap, @precision)",
        "invert": {"_target_": "Invertd", "keys": "pred", "transform": "@preprocessing", "orig_keys": "image",
                   "nearest_interp": True, "to_tensor": True},
    }


def _evaluator(handlers: str) -> dict[str, Any]:
    return {"_target_": "SupervisedEvaluator", "device": "@run_device", "val_data_loader": "@dataloader",
            "network": "@network", "inferer": "@inferer", "postprocessing": "@postprocessing",
            "val_handlers": handlers}


def bundle_configs(name: str) -> dict[str, Any]:
    """``{file name: content}`` of bundle ``name`` (a key of :data:`BUNDLES`)."""
    if name not in BUNDLES:
        raise ValueError(f"unknown MB-NAS bundle {name!r}; the bundles are {sorted(BUNDLES)}.")
    spec = BUNDLES[name]
    init = ["$vnas_monai.bundle.errors.install_excepthook(debug=@debug)", "$monai.utils.set_determinism(seed=@seed)"]
    paper = "Bosma et al., SPIE 2022"
    search = {"imports": _IMPORTS, "_desc_": (
        f"MB-NAS local search ({paper}, §2.3) on {spec['task']} as 2D slices; run id 'search' (or 'run'). "
        "restriction: mbnas | micro | macro | bilevel (§2.4); scheduler: a running Dask scheduler or null (local). "
        "The paper: max_evaluations 150, search_folds 5 x search_seeds 3."), **_common(name, spec), **_recipe(spec)}
    search.update({
        "output_dir": "$os.path.join(@work_dir, 'fold' + str(@fold), 'search')",
        "restriction": "mbnas",
        "max_evaluations": f"$150 {_PHANTOM} 8",
        "search_folds": [0],
        "search_seeds": [0],
        "initial": None,
        "scheduler": None,
        "n_workers": 1,
        "gpu": None,
        "progress": True,
        "runner": "$vnas_monai.spaces.mbnas.workflow.make_runner(@scheduler, @n_workers, @gpu)",
        "initialize": init,
        "search": ["$vnas_monai.spaces.mbnas.workflow.run_search(@trial, @output_dir, restriction=@restriction, "
                   "max_evaluations=@max_evaluations, folds=@search_folds, seeds=@search_seeds, seed=@seed, "
                   "num_nodes=@num_nodes, max_downsamplings=@max_downsamplings, runner=@runner, initial=@initial, "
                   "progress=@progress)"],
        "run": "@search",
        "finalize": [],
    })
    train = {"imports": _IMPORTS, "_desc_": (
        f"Retraining of the searched MB-NAS network from scratch on S_train + S_val of a fold ({paper}, §2.3 recipe); "
        "run id 'run'."), **_common(name, spec), **_recipe(spec)}
    train.update({
        "output_dir": "$os.path.join(@work_dir, 'fold' + str(@fold), 'train')",
        "arch": "$os.path.join(@work_dir, 'fold' + str(@fold), 'search', 'arch.json')",
        "max_epochs": f"$100 {_PHANTOM} 8",
        "train_split": "trainval",
        "initialize": init,
        "run": ["$vnas_monai.spaces.mbnas.workflow.retrain(@trial, vnas_monai.data.training_cases(@splits, "
                "@train_split), @arch, @output_dir, seed=@seed, epochs=@max_epochs, class_names=vnas_monai.bundle."
                "resolve_class_names(@class_names, @num_classes, @dataset_root))"],
        "finalize": [],
    })
    splits_fn = ("$lambda: vnas_monai.spaces.mbnas.workflow.fold_splits(vnas_monai.spaces.mbnas.workflow."
                 "resolve_dataset(@dataset_dir, @phantom_dir, @in_channels, @num_classes, @phantom_cases, "
                 "@phantom_shape), @fold, @num_folds, @seed, @datalist_file, @layout, @max_cases)")
    infer = {"imports": _IMPORTS, "_desc_": (
        "Slice-by-slice inference (MONAI SliceInferer) of a retrained MB-NAS network over 3D volumes; writes "
        "<output_dir>/<case>/<case>_seg.nii.gz with the input's shape and affine; run id 'run'."),
        **_common(name, spec), **_run_stage(spec, labels=False)}
    infer.update({
        "output_dir": "$vnas_monai.bundle.stage_dir(@checkpoint, 'infer')",
        "images": None,
        "input_dir": None,
        "splits_fn": splits_fn,
        "datalist": "$vnas_monai.bundle.inference_datalist(images=@images, input_dir=@input_dir, splits=@splits_fn)",
        "postprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "AsDiscreted", "keys": "pred", "argmax": True}, "@invert",
            {"_target_": "SaveImaged", "keys": "pred", "output_dir": "@output_dir", "output_postfix": "seg",
             "output_dtype": "$numpy.uint8", "resample": False, "separate_folder": True, "print_log": False,
             "output_name_formatter": "$vnas_monai.bundle.case_name_formatter"}]},
        "evaluator": _evaluator("$[monai.handlers.StatsHandler(iteration_log=False)]"),
        "initialize": init,
        "run": ["$@evaluator.run()", "$print('segmentations written to', @output_dir)"],
        "finalize": [],
    })
    evaluate = {"imports": _IMPORTS, "_desc_": (
        f"Evaluation of a retrained MB-NAS network on the fold's S_test ({paper}, Table 1: Dice, HD95, surface Dice "
        "at 2 mm) on the label files' grid; run id 'run'."), **_common(name, spec), **_run_stage(spec, labels=True)}
    evaluate.update({
        "output_dir": "$vnas_monai.bundle.stage_dir(@checkpoint, 'eval')",
        "eval_split": "test",
        "surface_tolerance_mm": 2.0,
        "class_names": _stored("class_names", "auto"),
        "splits": "$" + splits_fn[len("$lambda: "):],
        "datalist": "$vnas_monai.bundle.evaluation_datalist(@splits, @eval_split)",
        "postprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "AsDiscreted", "keys": "pred", "argmax": True}, "@invert"]},
        "metrics_writer": {"_target_": "vnas_monai.evaluation.SegmentationMetricsWriter", "output_dir": "@output_dir",
                           "class_names": "$vnas_monai.bundle.resolve_class_names(@class_names, @num_classes, "
                                          "@dataset_dir)",
                           "tolerance_mm": "@surface_tolerance_mm",
                           "title": "$'MB-NAS evaluation, fold ' + str(@fold) + ' (S_' + @eval_split + ')'",
                           "settings": {"checkpoint": "$str(@checkpoint)", "fold": "@fold", "split": "@eval_split",
                                        "arch": "$str(@arch)"}},
        "evaluator": _evaluator("$[@metrics_writer]"),
        "initialize": init,
        "run": ["$@evaluator.run()", "$print('metrics written to', @output_dir)"],
        "finalize": [],
    })
    return {"search.json": search, "train.json": train, "inference.json": infer, "evaluate.json": evaluate,
            "metadata.json": _metadata(name, spec)}


def _metadata(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    import monai
    import numpy
    import torch

    shape = [128, 128]
    return {
        "schema": "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/"
                  "meta_schema_20240725.json",
        "version": "0.1.0",
        "changelog": {"0.1.0": f"MB-NAS search, retrain, inference and evaluation bundles for {spec['task']}"},
        "monai_version": monai.__version__.split("+")[0],
        "pytorch_version": torch.__version__.split("+")[0],
        "numpy_version": numpy.__version__,
        "required_packages_version": {"vnas_monai": "0.1.0", "nibabel": "5.4.2", "pytorch-ignite": "0.5.5"},
        "name": f"MB-NAS {spec['task']} segmentation",
        "task": f"{spec['task']} segmentation with a 2D mixed-block U-Net found by local search",
        "description": "MB-NAS (Bosma et al., SPIE 2022): first-improvement local search over the topology and the "
                       "block type of every cell of a 10-node U-Net-like network, each candidate trained on 2D "
                       "slices and scored by its validation Dice; the best network retrained on the training set.",
        "authors": "vnas_monai developers",
        "copyright": "Copyright (c) vnas_monai developers",
        "data_source": spec["data_source"],
        "data_type": "nifti",
        "image_classes": spec["image_classes"],
        "label_classes": ", ".join(f"{k}: {v}" for k, v in spec["labels"].items()),
        "pred_classes": ", ".join(f"{k}: {v}" for k, v in spec["labels"].items()),
        "eval_metrics": {"mean_dice_paper": spec["paper_dice"]},
        "intended_use": "Research only",
        "references": [
            "Bosma, M.M.A., Dushatskiy, A., Grewal, M., Alderliesten, T., Bosman, P.A.N.: Mixed-Block Neural "
            "Architecture Search for Medical Image Segmentation. SPIE Medical Imaging 2022.",
            "Antonelli, M., et al.: The Medical Segmentation Decathlon. Nature Communications 13, 4128 (2022).",
        ],
        "network_data_format": {
            "inputs": {"image": {"type": "image", "format": "magnitude" if spec["modality"] == "MR" else "hounsfield",
                                 "modality": spec["modality"], "num_channels": spec["in_channels"],
                                 "spatial_shape": shape, "dtype": "float32", "value_range": [],
                                 "is_patch_data": True, "channel_def": spec["channel_def"]}},
            "outputs": {"pred": {"type": "image", "format": "segmentation", "num_channels": spec["num_classes"],
                                 "spatial_shape": shape, "dtype": "float32", "value_range": [0, 1],
                                 "is_patch_data": True, "channel_def": spec["labels"]}},
        },
    }


_LOGGING = """[loggers]
keys=root

[handlers]
keys=consoleHandler

[formatters]
keys=fullFormatter

[logger_root]
level=INFO
handlers=consoleHandler

[handler_consoleHandler]
class=StreamHandler
level=INFO
formatter=fullFormatter
args=(sys.stdout,)

[formatter_fullFormatter]
format=%(asctime)s - %(name)s - %(levelname)s - %(message)s
"""


def write_bundle(name: str, root: str | Path = "bundles") -> Path:
    """Write bundle ``name``'s configs and ``logging.conf`` into ``<root>/<name>``; returns the folder."""
    out = Path(root) / name
    out.mkdir(parents=True, exist_ok=True)
    for file, config in bundle_configs(name).items():
        (out / file).write_text(json.dumps(config, indent=4) + "\n")
    (out / "logging.conf").write_text(_LOGGING)
    return out


if __name__ == "__main__":
    for bundle in BUNDLES:
        print(write_bundle(bundle))
