"""Baselines with their own best-known recipes, trained within a wall-clock budget from a plan
(:mod:`vnas_monai.plan`): MONAI ``UNet`` (tutorial recipe), ``DynUNet`` (nnU-Net-style), ``SegResNet`` (its MONAI
recipe), Çiçek et al.'s 3D U-Net (``unet3d``, MONAI's BasicUNet tutorial recipe) and ``VNet`` (Milletari et al.'s
recipe). Each ``train_*(plan, splits, budget_s, work_dir)`` returns a :class:`TrainedModel`.

The recipe modules import MONAI on first use; import them directly (``vnas_monai.baselines.unet``) or through the
benchmark registry (``unet3d`` and ``vnet`` are also exported here).
"""

from __future__ import annotations

from .training import SCHEDULES, TrainedModel, model_cost, predict_cases, save_checkpoint, train_budgeted
from .unet3d import UNET3D_RECIPE, UNet3D, build_unet3d, train_unet3d
from .vnet import VNET_RECIPE, build_vnet, train_vnet

__all__ = ["SCHEDULES", "TrainedModel", "model_cost", "predict_cases", "save_checkpoint", "train_budgeted",
           "UNET3D_RECIPE", "UNet3D", "build_unet3d", "train_unet3d", "VNET_RECIPE", "build_vnet", "train_vnet"]
