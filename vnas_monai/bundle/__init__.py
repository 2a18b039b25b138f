"""Glue between the V-NAS bundles' configs and MONAI: architectures and weights of a stage (:mod:`.weights`),
datalists and output names (:mod:`.datalists`), small config helpers (:mod:`.utils`), the settings stored with a
training run (:mod:`.settings`), the short failure message of a bundle run (:mod:`.errors`). What an evaluation
computes and writes is :mod:`vnas_monai.evaluation`."""

from __future__ import annotations

from .datalists import case_name, case_name_formatter, evaluation_datalist, fold_splits, inference_datalist
from .finish import prune_checkpoints, report_search
from .settings import check_run_settings, load_run_settings, save_run_settings, stage_dir, stored_setting
from .utils import dice_weight, parse_flip_axes, resolve_class_names, validate_at_end
from .weights import checkpoint_architecture, load_state_dict, load_weights, resolve_architecture, save_architecture

__all__ = [
    "case_name",
    "check_run_settings",
    "case_name_formatter",
    "checkpoint_architecture",
    "dice_weight",
    "evaluation_datalist",
    "fold_splits",
    "inference_datalist",
    "load_state_dict",
    "load_run_settings",
    "load_weights",
    "parse_flip_axes",
    "prune_checkpoints",
    "report_search",
    "resolve_architecture",
    "resolve_class_names",
    "save_architecture",
    "save_run_settings",
    "stage_dir",
    "stored_setting",
    "validate_at_end",
]
