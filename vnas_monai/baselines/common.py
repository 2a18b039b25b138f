"""The part every baseline recipe shares: loader from the plan, budgeted training on ``trainval``, checkpoint."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from .pipeline import make_loader
from .training import TrainedModel, model_cost, save_checkpoint, train_budgeted

__all__ = ["fit", "fit_recipe", "make_optimizer"]

logger = logging.getLogger(__name__)


def make_optimizer(params: Any, recipe: Mapping[str, Any]) -> torch.optim.Optimizer:
    """The optimizer a recipe names: ``"Adam"``, ``"AdamW"`` (``weight_decay``), ``"SGD"`` or ``"SGD nesterov"``
    (``momentum``, ``weight_decay``), at ``recipe["lr"]``.

    Raises:
        ValueError: another optimizer name (the message lists the known ones).
    """
    name, lr = recipe["optimizer"], recipe["lr"]
    if name == "Adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=recipe.get("weight_decay", 0.0))
    if name == "AdamW":
        return torch.optim.AdamW(params, lr=lr, weight_decay=recipe.get("weight_decay", 1e-2))
    if name in ("SGD", "SGD nesterov"):
        return torch.optim.SGD(params, lr=lr, momentum=recipe.get("momentum", 0.0), nesterov=name == "SGD nesterov",
                               weight_decay=recipe.get("weight_decay", 0.0))
    raise ValueError(f"recipe optimizer must be 'Adam', 'AdamW', 'SGD' or 'SGD nesterov', got {name!r}.")


def fit(
    name: str,
    model: torch.nn.Module,
    loss_fn: Any,
    optimizer: torch.optim.Optimizer,
    plan: Mapping[str, Any],
    splits: Mapping[str, Sequence[Mapping[str, Any]]],
    budget_s: float,
    work_dir: str | os.PathLike,
    recipe: Mapping[str, Any],
    roi_size: Sequence[int] | None = None,
    seed: int = 0,
    max_steps: int | None = None,
    **augment: Any,
) -> TrainedModel:
    """Train ``model`` on ``splits["trainval"]`` with the plan's pipeline for ``budget_s`` seconds and save it.

    Args:
        name: method name (logs).
        model, loss_fn, optimizer: the recipe's parts.
        plan: the plan (:mod:`vnas_monai.plan`).
        splits: ``fold_datalists`` output; trained on ``trainval`` (S_train + S_val, as V-NAS retrains).
        budget_s: wall-clock training budget (the one-off caching of the preprocessed cases is not counted; it is
            reported as ``prep_time_s``).
        work_dir: the method's folder: ``model.pt`` goes there.
        recipe: logged and stored in ``meta``; ``schedule``, ``deep_supervision``, ``clip_grad_norm``,
            ``batch_size``, ``num_samples``, ``precision`` and ``ema_decay`` are used.
        roi_size: the training patch (default: the plan's).
        seed: seed of the crops and of the shuffling.
        max_steps: optional cap on steps (tests).
        **augment: ``intensity`` / ``affine`` flags of :func:`vnas_monai.baselines.pipeline.train_augmentation`.
    """
    roi = list(roi_size or plan["patch_size"])
    cases = splits["trainval"]
    if not cases:
        raise ValueError(f"{name}: splits['trainval'] is empty: nothing to train on.")
    t0 = time.perf_counter()
    loader = make_loader(cases, plan, roi, recipe.get("batch_size"), recipe.get("num_samples"), seed=seed, **augment)
    prep = time.perf_counter() - t0
    logger.info("%s: %d training cases cached in %.1f s; recipe %s; patch %s", name, len(cases), prep, dict(recipe),
                roi)
    stats = train_budgeted(
        model, loss_fn, optimizer, loader, budget_s, schedule=recipe.get("schedule", "constant"),
        deep_supervision=bool(recipe.get("deep_supervision", False)), max_steps=max_steps,
        clip_grad_norm=recipe.get("clip_grad_norm"), precision=recipe.get("precision", "fp32"),
        ema_decay=recipe.get("ema_decay"),
    )
    logger.info("%s: %d steps, %d epochs in %.0f s (final loss %.4f)", name, stats["steps"], stats["epochs"],
                stats["train_time_s"], stats["final_loss"])
    ckpt = save_checkpoint(model, Path(work_dir) / "model.pt")
    meta = {"method": name, "recipe": dict(recipe), "roi_size": roi, "prep_time_s": round(prep, 2), **stats,
            **model_cost(model, roi)}
    return TrainedModel(model=model, roi_size=roi, checkpoint=ckpt, meta=meta)


def fit_recipe(
    name: str,
    model: torch.nn.Module,
    loss_fn: Any,
    recipe: Mapping[str, Any],
    divisible_by: int,
    plan: Mapping[str, Any],
    splits: Mapping[str, Sequence[Mapping[str, Any]]],
    budget_s: float,
    work_dir: str | os.PathLike,
    seed: int = 0,
    max_steps: int | None = None,
    **augment: Any,
) -> TrainedModel:
    """:func:`fit` of a baseline whose patch is the plan's median shape fitted to ``divisible_by`` and whose optimizer
    the recipe names (:func:`make_optimizer`): the shared body of the U-Net, 3D U-Net, VNet and SegResNet methods."""
    from vnas_monai.plan import fit_patch_size

    roi = fit_patch_size(plan["median_shape"], divisible_by)
    optimizer = make_optimizer(model.parameters(), recipe)
    return fit(name, model, loss_fn, optimizer, plan, splits, budget_s, work_dir, recipe, roi, seed, max_steps,
               **augment)
