"""The V-NAS bundles' stage configs as pure functions of their source, ``bundles/vnas_nih/search.json``.

Every other stage (train, inference, evaluate) is built from the source's keys (:func:`train_config`,
:func:`inference_config`, :func:`evaluate_config`, with the shared :func:`network_def` and :func:`preprocessing` that
the MONAI Label export uses too); :mod:`vnas_monai.bundle.generate` makes the dataset copies and writes them all.
"""

from __future__ import annotations

import copy
import json
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

__all__ = [
    "PLANNED", "check_source", "evaluate_config", "inference_config", "load_source", "network_def", "planned",
    "preprocessing", "read_back", "train_config",
]


def load_source(root: str | os.PathLike) -> Any:
    """``<root>/vnas_nih/search.json``, key order kept."""
    with open(Path(root) / "vnas_nih" / "search.json") as f:
        return json.load(f, object_pairs_hook=OrderedDict)


SPLITS = ("$vnas_monai.bundle.fold_splits(@dataset_dir, os.path.join(@work_dir, 'fold' + str(@fold), 'search'), "
          "fold=@fold, num_folds=@num_folds, seed=@seed, datalist_file=@datalist_file, layout=@layout, "
          "max_cases=@max_cases, phantom_cases=@phantom_cases, num_classes=@num_classes)")
SEARCH_ARCH = "$os.path.join(@work_dir, 'fold' + str(@fold), 'search', 'arch.json')"
CKPT = "$os.path.join(@work_dir, 'fold' + str(@fold), 'train', 'model.pt')"


def _imports(search: Any) -> list[str]:
    return list(search["imports"]) + ["$import vnas_monai.bundle"]


COMMON = ["bundle_root", "dataset_dir", "layout", "work_dir", "output_dir", "datalist_file", "fold", "num_folds",
          "max_cases", "seed", "device", "precision", "max_epochs", "epoch_length", "roi_size", "num_samples",
          "batch_size", "num_workers", "cache_rate", "in_channels", "num_classes", "init_filters", "intensity_clip",
          "spacing", "flip_axes", "loss", "learning_rate", "resume", "check_keys", "debug", "extra_keys",
          "phantom_cases"]


#: keys a plan sets in the search and train stages (bundle key ``plan``: null, "auto" or a plan file), with their
#: defaults when there is none; inference and evaluation take them from the training run's settings.json instead
PLANNED = OrderedDict([("roi_size", [96, 96, 64]), ("spacing", None), ("intensity_clip", [-100, 240]),
                       ("flip_axes", [0, 1]), ("batch_size", 1), ("num_samples", 2)])
PLAN_DICT = ("$vnas_monai.plan.resolve_plan(@plan, os.path.join(@work_dir, 'fold' + str(@fold)), @dataset_root, "
             "@splits['trainval'], vnas_monai.spaces.vnas.DIVISOR)")
#: the fold's splits from ``@dataset_root`` (the search's own; train and evaluate resolve the dataset once too)
ROOT_SPLITS = ("$vnas_monai.data.fold_datalists(@dataset_root, fold=@fold, num_folds=@num_folds, seed=@seed, "
               "datalist_file=@datalist_file, layout=@layout, max_cases=@max_cases)")
SEARCH_ROOT = ("$vnas_monai.data.resolve_dataset_dir(@dataset_dir, @output_dir, num_cases=@phantom_cases, "
               "num_classes=@num_classes)")


#: the dataset of a fold's later stages: the given one, or the phantoms the search generated in its folder
FOLD_ROOT = SEARCH_ROOT.replace("@output_dir", "os.path.join(@work_dir, 'fold' + str(@fold), 'search')")


def planned(key: str, default: Any) -> str:
    """The expression of a planned key: the plan's value, else ``default``."""
    return f"$vnas_monai.plan.plan_value(@plan_dict, '{key}', {default!r})"


def check_source(search: Any) -> None:
    for k, v in PLANNED.items():
        if search[k] != planned(k, v):
            raise ValueError(f"search.json's {k} must be {planned(k, v)!r}")
    if (search["plan_dict"] != PLAN_DICT or search["dataset_root"] != SEARCH_ROOT or search["plan"] is not None
            or search["splits"] != ROOT_SPLITS):
        raise ValueError("search.json's plan, plan_dict and dataset_root are not the generator's.")
    if json.loads(json.dumps(search["preprocessing"])) != json.loads(json.dumps(preprocessing())):
        raise ValueError("search.json's preprocessing is not vnas_monai.bundle.configs.preprocessing().")


def top(search: Any, stage: str, desc: str, extra: Any) -> Any:
    c = OrderedDict()
    c["imports"] = _imports(search)
    c["_desc_"] = desc
    for k in COMMON:
        c[k] = copy.deepcopy(search[k])
    c["output_dir"] = f"$os.path.join(@work_dir, 'fold' + str(@fold), '{stage}')"
    c.update(extra)
    c["run_device"] = search["run_device"]
    c["splits"] = SPLITS
    return c


def network_def(architecture: str = "@architecture") -> Any:
    """The discrete network of a stage: the V-NAS space's ``network_def`` (its :class:`vnas_monai.spaces.BundleNetwork`,
    which the MONAI Label export writes too, with the bundle's arch.json as ``architecture``)."""
    from vnas_monai.spaces import get_space

    return get_space("vnas").bundle_network().network_def(architecture)


def preprocessing(labels: bool = True, pad: bool = True, label_checks: bool = True) -> list[Any]:
    """The deterministic preprocessing of every stage (the search's is ``preprocessing()``): load (naming a file it
    cannot read), channel first, label checks, RAS, resampling to ``@spacing``, the ``@intensity_clip`` window,
    per-case z-score, padding to ``@roi_size``.

    Args:
        labels: image and label (training, evaluation) or the image alone (inference).
        pad: pad to the training patch (not for sliding-window inference on whole volumes).
        label_checks: check the label against the image and ``@num_classes`` (with ``labels``).
    """
    keys: Any = ["image", "label"] if labels else "image"
    mode: Any = ["bilinear", "nearest"] if labels else "bilinear"
    xs = [OrderedDict([("_target_", "vnas_monai.data.transforms.CheckedLoadImaged"), ("keys", copy.copy(keys)),
                       ("image_only", True)]),
          OrderedDict([("_target_", "EnsureChannelFirstd"), ("keys", copy.copy(keys))])]
    if labels and label_checks:
        xs.append(OrderedDict([("_target_", "vnas_monai.data.transforms.CheckImageLabeld"), ("keys", copy.copy(keys)),
                               ("num_classes", "@num_classes")]))
    xs += [OrderedDict([("_target_", "Orientationd"), ("keys", copy.copy(keys)), ("axcodes", "RAS"), ("labels", None)]),
           OrderedDict([("_target_", "Spacingd"), ("keys", copy.copy(keys)), ("pixdim", "@spacing"), ("mode", mode),
                        ("_disabled_", "$@spacing is None")]),
           OrderedDict([("_target_", "vnas_monai.data.transforms.ClipIntensityd"), ("keys", "image"),
                        ("clip", "@intensity_clip")]),
           OrderedDict([("_target_", "NormalizeIntensityd"), ("keys", "image")])]
    if pad:
        xs.append(OrderedDict([("_target_", "SpatialPadd"), ("keys", copy.copy(keys)), ("spatial_size", "@roi_size")]))
    xs.append(OrderedDict([("_target_", "EnsureTyped"), ("keys", copy.copy(keys))]))
    return xs


# sliding-window inference under the bundle's precision (SupervisedEvaluator's own amp flag is CUDA-only)
SLIDING = OrderedDict([("_target_", "vnas_monai.engine.PrecisionInferer"), ("precision", "@precision"),
                       ("inferer", OrderedDict([("_target_", "SlidingWindowInferer"), ("roi_size", "@infer_roi_size"),
                                                ("sw_batch_size", "@sw_batch_size"), ("overlap", "@overlap"),
                                                ("mode", "@blend_mode")]))])
INFER_KEYS = OrderedDict([("infer_roi_size", [64, 64, 64]), ("overlap", 0.5), ("sw_batch_size", 2),
                          ("blend_mode", "gaussian")])
#: inference and evaluation (fixed weights) may run the network compiled with frozen weights (off by default;
#: ``vnas_monai.engine.InferenceCompiler``); the validation inside training never does
FIXED_SLIDING = OrderedDict([*list(SLIDING.items())[:2], ("compile", "@compile"), *list(SLIDING.items())[2:]])


LOAD_NETWORK = "$vnas_monai.bundle.load_weights(@network_def, @checkpoint, map_location=@run_device).to(@run_device)"


#: the training run's settings, written beside model.pt; inference, evaluation and export read them back
SAVE_SETTINGS = ("$vnas_monai.bundle.save_run_settings(@output_dir, architecture=@architecture, "
                 "in_channels=@in_channels, num_classes=@num_classes, init_filters=@init_filters, "
                 "class_names=vnas_monai.bundle.resolve_class_names(@class_names, @num_classes, @dataset_dir), "
                 "intensity_clip=@intensity_clip, spacing=@spacing, roi_size=@roi_size, "
                 "infer_roi_size=@infer_roi_size, flip_axes=vnas_monai.bundle.parse_flip_axes(@flip_axes))")
#: keys that inference and evaluation take from the checkpoint's settings.json (their value here is the default when
#: there is none); an explicit value of a checked key that contradicts the stored one is refused
READ_BACK = ("in_channels", "num_classes", "init_filters", "intensity_clip", "spacing", "class_names",
             "infer_roi_size")
CHECKED = ("in_channels", "num_classes", "init_filters", "intensity_clip", "spacing", "class_names")


def read_back(c: Any) -> Any:
    """Make an inference/evaluation config take the training run's settings (after the dataset defaults)."""
    for k in READ_BACK:
        if k in c:
            c[k] = f"$vnas_monai.bundle.stored_setting(@checkpoint, '{k}', {c[k]!r})"
    stage = c["output_dir"].split("'")[-2]  # infer / eval, beside the training run of the checkpoint
    c["output_dir"] = f"$vnas_monai.bundle.stage_dir(@checkpoint, '{stage}')"
    checked = ", ".join(f"{k}=@{k}" for k in CHECKED if k in c)
    c["initialize"] = list(c["initialize"]) + [f"$vnas_monai.bundle.check_run_settings(@checkpoint, {checked})"]
    return c


def train_config(search: Any) -> Any:
    c = top(search, "train", "Retraining of a V-NAS architecture from scratch on S_train + S_val of a fold (Zhu "
            "et al., 3DV 2019, §3.3), validated by sliding-window Dice on S_val; run id 'run'.",
            OrderedDict([("arch", "auto"), ("arch_fallback", "nih"), ("class_names", ["background", "pancreas"]),
                         ("train_split", "trainval"), ("val_interval", 10), *INFER_KEYS.items()]))
    # the fold's plan, as the search read it (<work_dir>/fold<k>/plan.json with "auto")
    c["plan"] = None
    c["dataset_root"] = FOLD_ROOT
    c["splits"] = ROOT_SPLITS
    c["plan_dict"] = PLAN_DICT
    c["architecture"] = ("$vnas_monai.bundle.resolve_architecture(@arch, search_arch=" + SEARCH_ARCH[1:]
                         + ", fallback=@arch_fallback)")
    c["network_def"] = network_def()
    c["network"] = "$@network_def.to(@run_device)"
    c["loss_function"] = copy.deepcopy(search["loss_function"])
    c["optimizer"] = copy.deepcopy(search["optimizer"])
    c["optimizer"]["params"] = "$@network.parameters()"
    c["lr_scheduler"] = copy.deepcopy(search["lr_scheduler"])
    # MONAI Label overrides train#trainer#max_epochs alone: the poly horizon follows it
    c["lr_scheduler"]["total_iters"] = c["lr_scheduler"]["total_iters"].replace("(@max_epochs,",
                                                                                "(@train#trainer#max_epochs,")
    assert "@train#trainer#max_epochs" in c["lr_scheduler"]["total_iters"]
    c["preprocessing"] = copy.deepcopy(search["preprocessing"])
    c["augmentation"] = copy.deepcopy(search["augmentation"])
    c["train_transforms"] = copy.deepcopy(search["train_transforms"])
    unpadded = "$[t for t in @preprocessing if not isinstance(t, monai.transforms.SpatialPadd)]"
    c["val_transforms"] = OrderedDict([("_target_", "Compose"), ("transforms", unpadded)])
    tr = copy.deepcopy(search["train"])
    tr["dataset"]["data"] = "$vnas_monai.data.training_cases(@splits, @train_split)"
    loss_out = "$monai.handlers.from_engine(['loss'], first=True)"
    tr["inferer"] = {"_target_": "SimpleInferer"}
    tr["handlers"] = [
        search["train"]["handlers"][0],
        OrderedDict([("_target_", "ValidationHandler"), ("validator", "@validate#evaluator"),
                     ("epoch_level", True), ("interval", "@val_interval")]),
        OrderedDict([("_target_", "StatsHandler"), ("tag_name", "train_loss"), ("output_transform", loss_out)]),
        OrderedDict([("_target_", "TensorBoardStatsHandler"), ("log_dir", "$os.path.join(@output_dir, 'tensorboard')"),
                     ("tag_name", "train_loss"), ("output_transform", loss_out)]),
        OrderedDict([("_target_", "ignite.handlers.ProgressBar"), ("persist", True)]),
    ]
    tr["trainer"] = OrderedDict([
        ("_target_", "vnas_monai.engine.PrecisionTrainer"), ("device", "@run_device"), ("max_epochs", "@max_epochs"),
        ("epoch_length", "@epoch_length"), ("train_data_loader", "@train#dataloader"), ("network", "@network"),
        ("optimizer", "@optimizer"), ("loss_function", "@loss_function"), ("inferer", "@train#inferer"),
        ("precision", "@precision"), ("train_handlers", "@train#handlers")])
    c["train"] = tr
    va = OrderedDict()
    va["dataset"] = OrderedDict([("_target_", "CacheDataset"), ("data", "$@splits['val']"),
                                 ("transform", "@val_transforms"), ("cache_rate", "@cache_rate"),
                                 ("num_workers", "@num_workers"), ("progress", False)])
    va["dataloader"] = OrderedDict([("_target_", "DataLoader"), ("dataset", "@validate#dataset"), ("batch_size", 1),
                                    ("shuffle", False), ("num_workers", "@num_workers")])
    va["inferer"] = copy.deepcopy(SLIDING)
    va["postprocessing"] = OrderedDict([("_target_", "Compose"), ("transforms", [
        OrderedDict([("_target_", "AsDiscreted"), ("keys", ["pred", "label"]), ("argmax", [True, False]),
                     ("to_onehot", "@num_classes")])])])
    va["key_metric"] = OrderedDict([("val_mean_dice", OrderedDict([
        ("_target_", "MeanDice"), ("include_background", False),
        ("output_transform", "$monai.handlers.from_engine(['pred', 'label'])")]))])
    va["handlers"] = [
        OrderedDict([("_target_", "StatsHandler"), ("iteration_log", False)]),
        OrderedDict([("_target_", "TensorBoardStatsHandler"), ("log_dir", "$os.path.join(@output_dir, 'tensorboard')"),
                     ("iteration_log", False)]),
        "@best_saver",
    ]
    c["best_saver"] = OrderedDict([("_target_", "CheckpointSaver"), ("save_dir", "@output_dir"),
                                   ("save_dict", {"model": "@network"}), ("save_key_metric", True),
                                   ("key_metric_filename", "model.pt")])
    va["evaluator"] = OrderedDict([
        ("_target_", "SupervisedEvaluator"), ("device", "@run_device"), ("val_data_loader", "@validate#dataloader"),
        ("network", "@network"), ("inferer", "@validate#inferer"), ("postprocessing", "@validate#postprocessing"),
        ("key_val_metric", "@validate#key_metric"),
        ("val_handlers", "@validate#handlers")])
    c["validate"] = va
    c["checkpoint_dict"] = OrderedDict([("network", "@network"), ("optimizer", "@optimizer"),
                                        ("lr_scheduler", "@lr_scheduler"), ("trainer", "@train#trainer"),
                                        ("best_model", "$@best_saver._key_metric_checkpoint")])
    c["checkpoint_loader"] = copy.deepcopy(search["checkpoint_loader"])
    c["checkpoint_saver"] = copy.deepcopy(search["checkpoint_saver"])
    c["final_saver"] = OrderedDict([("_target_", search["checkpoint_saver"]["_target_"]), ("save_dir", "@output_dir"),
                                    ("save_dict", {"model": "@network"}), ("save_final", True),
                                    ("final_filename", "model_final.pt")])
    c["initialize"] = list(search["initialize"])
    c["run"] = [
        "$vnas_monai.bundle.save_architecture(@architecture, @output_dir)",
        SAVE_SETTINGS,
        "$@checkpoint_loader.attach(@train#trainer)",
        "$@checkpoint_saver.attach(@train#trainer)",
        "$@final_saver.attach(@train#trainer)",
        "$vnas_monai.engine.restart_data_each_epoch(@train#trainer)",
        "$@train#trainer.run()",
        "$vnas_monai.bundle.validate_at_end(@train#trainer, @validate#evaluator, @val_interval)",
        "$vnas_monai.bundle.prune_checkpoints(@output_dir)",
        "$print('retrained', @architecture, '->', os.path.join(@output_dir, 'model.pt'))",
    ]
    c["finalize"] = []
    return c


CHECKPOINT_ARCH = ("$vnas_monai.bundle.resolve_architecture(@arch, checkpoint=@checkpoint, search_arch="
                   + SEARCH_ARCH[1:] + ", fallback=@arch_fallback)")
ONE_CASE_LOADER = OrderedDict([("_target_", "DataLoader"), ("dataset", "@dataset"), ("batch_size", 1),
                               ("shuffle", False), ("num_workers", "@num_workers")])
#: keys of the training stages that the inference and evaluation stages do not have
TRAINING_KEYS = ("max_epochs", "epoch_length", "num_samples", "batch_size", "cache_rate", "flip_axes", "loss",
                 "learning_rate", "resume")


def evaluator_stage(search: Any, c: Any, message: str) -> Any:
    """Finish an inference/evaluation config: the ``SupervisedEvaluator`` over ``@dataloader`` and the run lists."""
    c["evaluator"] = OrderedDict([
        ("_target_", "SupervisedEvaluator"), ("device", "@run_device"), ("val_data_loader", "@dataloader"),
        ("network", "@network"), ("inferer", "@inferer"), ("postprocessing", "@postprocessing"),
        ("val_handlers", "@handlers")])
    c["initialize"] = list(search["initialize"])
    c["run"] = ["$@evaluator.run()", f"$print('{message}', @output_dir)"]
    c["finalize"] = []
    for k in TRAINING_KEYS:
        del c[k]
    return c


def inference_config(search: Any) -> Any:
    c = top(search, "infer", "Sliding-window inference of a retrained V-NAS network; writes <output_dir>/<case>/"
            "<case>_seg.nii.gz on each input image's grid (NIfTI files or DICOM series); run id 'run'.",
            OrderedDict([("arch", "auto"), ("arch_fallback", "nih"), ("checkpoint", CKPT), ("images", None),
                         ("input_dir", None), *INFER_KEYS.items(), ("compile", False)]))
    c["architecture"] = CHECKPOINT_ARCH
    c["splits_fn"] = SPLITS.replace("$vnas_monai.bundle.fold_splits(", "$lambda: vnas_monai.bundle.fold_splits(")
    del c["splits"]
    c["datalist"] = "$vnas_monai.bundle.inference_datalist(images=@images, input_dir=@input_dir, splits=@splits_fn)"
    c["network_def"] = network_def()
    c["network"] = LOAD_NETWORK
    c["preprocessing"] = OrderedDict([("_target_", "Compose"), ("transforms", preprocessing(labels=False, pad=False))])
    c["dataset"] = OrderedDict([("_target_", "Dataset"), ("data", "@datalist"), ("transform", "@preprocessing")])
    c["dataloader"] = ONE_CASE_LOADER
    c["inferer"] = copy.deepcopy(FIXED_SLIDING)
    c["postprocessing"] = OrderedDict([("_target_", "Compose"), ("transforms", [
        OrderedDict([("_target_", "AsDiscreted"), ("keys", "pred"), ("argmax", True)]),
        OrderedDict([("_target_", "Invertd"), ("keys", "pred"), ("transform", "@preprocessing"),
                     ("orig_keys", "image"), ("nearest_interp", True), ("to_tensor", True)]),
        OrderedDict([("_target_", "SaveImaged"), ("keys", "pred"), ("output_dir", "@output_dir"),
                     ("output_postfix", "seg"), ("output_dtype", "$numpy.uint8"), ("resample", False),
                     ("separate_folder", True), ("print_log", False),
                     ("output_name_formatter", "$vnas_monai.bundle.case_name_formatter")]),
    ])])
    c["imports"] = _imports(search) + ["$import numpy"]
    c["handlers"] = [OrderedDict([("_target_", "StatsHandler"), ("iteration_log", False)]),
                     OrderedDict([("_target_", "ignite.handlers.ProgressBar"), ("persist", True)])]
    return evaluator_stage(search, c, "segmentations written to")


def evaluate_config(search: Any) -> Any:
    c = top(search, "eval", "Evaluation of a retrained V-NAS network on the fold's S_test: per-case Dice, HD95 and "
            "surface Dice per class (metrics.csv), the paper's summary (summary.json, summary.md) and overlay PNGs; "
            "run id 'run'.",
            OrderedDict([("arch", "auto"), ("arch_fallback", "nih"), ("checkpoint", CKPT),
                         ("class_names", ["background", "pancreas"]), ("eval_split", "test"),
                         ("surface_tolerance_mm", 1.0), ("num_overlays", 3), *INFER_KEYS.items(),
                         ("compile", False)]))
    c["architecture"] = CHECKPOINT_ARCH
    c["dataset_root"] = FOLD_ROOT
    c["splits"] = ROOT_SPLITS
    c["network_def"] = network_def()
    c["network"] = LOAD_NETWORK
    c["preprocessing"] = preprocessing(pad=False)
    c["datalist"] = "$vnas_monai.bundle.evaluation_datalist(@splits, @eval_split)"
    compose = OrderedDict([("_target_", "Compose"), ("transforms", "$@preprocessing")])
    c["dataset"] = OrderedDict([("_target_", "Dataset"), ("data", "@datalist"), ("transform", compose)])
    c["dataloader"] = ONE_CASE_LOADER
    c["inferer"] = copy.deepcopy(FIXED_SLIDING)
    c["postprocessing"] = OrderedDict([("_target_", "Compose"), ("transforms", [
        OrderedDict([("_target_", "AsDiscreted"), ("keys", "pred"), ("argmax", True)])])])
    c["metrics_writer"] = OrderedDict([
        ("_target_", "vnas_monai.evaluation.SegmentationMetricsWriter"), ("output_dir", "@output_dir"),
        ("class_names", "$vnas_monai.bundle.resolve_class_names(@class_names, @num_classes, @dataset_dir)"),
        ("tolerance_mm", "@surface_tolerance_mm"),
        ("title", "$'V-NAS evaluation, fold ' + str(@fold) + ' (S_' + @eval_split + ')'"),
        ("settings", OrderedDict([("checkpoint", "$str(@checkpoint)"), ("fold", "@fold"), ("num_folds", "@num_folds"),
                                  ("split", "@eval_split"), ("architecture", "$@architecture.to_dict()"),
                                  ("infer_roi_size", "@infer_roi_size"), ("overlap", "@overlap"),
                                  ("spacing", "@spacing")]))])
    c["overlay_writer"] = OrderedDict([("_target_", "vnas_monai.evaluation.OverlayWriter"),
                                       ("output_dir", "$os.path.join(@output_dir, 'overlays')"),
                                       ("num_cases", "@num_overlays")])
    c["handlers"] = ["@metrics_writer", "@overlay_writer",
                     OrderedDict([("_target_", "ignite.handlers.ProgressBar"), ("persist", True)])]
    return evaluator_stage(search, c, "metrics written to")
