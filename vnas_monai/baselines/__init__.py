"""Baselines with their own best-known recipes, trained within a wall-clock budget from a plan
(:mod:`vnas_monai.plan`): MONAI ``UNet`` (tutorial recipe), ``DynUNet`` (nnU-Net-style), ``SegResNet`` (its MONAI
recipe). Each ``train_*(plan, splits, budget_s, work_dir)`` returns a :class:`TrainedModel`.

The recipe modules import MONAI on first use; import them directly (``vnas_monai.baselines.unet``) or through the
benchmark registry.
"""

from __future__ import annotations

from .training import SCHEDULES, TrainedModel, model_cost, predict_cases, save_checkpoint, train_budgeted

__all__ = ["SCHEDULES", "TrainedModel", "model_cost", "predict_cases", "save_checkpoint", "train_budgeted"]
