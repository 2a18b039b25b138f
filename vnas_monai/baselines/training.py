"""A wall-clock-budgeted training loop, sliding-window evaluation and checkpoints, shared by the baselines.

The schedule is a function of the elapsed fraction of the budget (``progress`` in [0, 1]), not of an iteration count
fixed in advance, so that a recipe's decay (poly, cosine) spans exactly the time it is given on any machine.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vnas_monai.engine.host_memory import keep_freed_memory
from vnas_monai.engine.precision import resolve_precision
from vnas_monai.io import atomic_write
from vnas_monai.networks.layers.memory import computing_layout

__all__ = ["TrainedModel", "SCHEDULES", "train_budgeted", "predict_cases", "save_checkpoint", "model_cost"]

logger = logging.getLogger(__name__)

#: Learning-rate factors as functions of the elapsed budget fraction ``p``.
SCHEDULES: dict[str, Callable[[float], float]] = {
    "constant": lambda p: 1.0,
    "poly": lambda p: max(0.0, 1.0 - p) ** 0.9,  # nnU-Net: lr * (1 - epoch / max_epochs) ** 0.9
    "cosine": lambda p: 0.5 * (1.0 + math.cos(math.pi * min(1.0, p))),
}


@dataclass
class TrainedModel:
    """What a benchmark method returns.

    Attributes:
        model: the trained network (eval mode, CPU); ``model(x)`` maps (B, in_channels, *roi) to class logits
            (B, num_classes, *roi) on inputs whose spatial size is a multiple of ``divisible_by``.
        roi_size: the sliding-window patch used for inference (the training patch).
        checkpoint: the state dict file (``torch.load(path, weights_only=True)``).
        meta: recipe, steps, epochs, train_time_s, and anything the method wants in the tables' JSON.
    """

    model: torch.nn.Module
    roi_size: list[int]
    checkpoint: Path
    meta: dict[str, Any] = field(default_factory=dict)


def _deep_supervision_loss(loss_fn: Callable, out: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """DynUNet's deep supervision output (B, 1 + heads, C, *roi), all heads upsampled: weights 1, 1/2, 1/4, ...
    normalised to sum 1 (nnU-Net)."""
    heads = torch.unbind(out, dim=1)
    weights = [0.5**i for i in range(len(heads))]
    return sum(w * loss_fn(h, label) for w, h in zip(weights, heads)) / sum(weights)


def train_budgeted(
    model: torch.nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    loader: Any,
    budget_s: float,
    schedule: str = "constant",
    deep_supervision: bool = False,
    channels_last: bool = True,
    max_steps: int | None = None,
    log_every_s: float = 60.0,
    clip_grad_norm: float | None = None,
    precision: str = "fp32",
    ema_decay: float | None = None,
) -> dict[str, Any]:
    """Train until ``budget_s`` seconds have passed (at least one step), setting each step's learning rate to
    ``base_lr * SCHEDULES[schedule](elapsed / budget_s)``.

    Args:
        model: the network, trained in place (CPU).
        loss_fn: ``loss(logits (B, C, *roi), label (B, 1, *roi)) -> scalar``.
        optimizer: its base learning rates are those it was built with.
        loader: yields ``{"image": (B, 1, *roi), "label": (B, 1, *roi)}``; restarted when exhausted.
        budget_s: wall-clock seconds (data loading included).
        schedule: a key of :data:`SCHEDULES`.
        deep_supervision: the model returns (B, 1 + heads, C, *roi) in training mode (MONAI ``DynUNet``).
        channels_last: compute channels-last 3D throughout (faster oneDNN convolutions and norms on CPU; a V-NAS
            network's convolutions too, see :func:`vnas_monai.networks.layers.computing_layout`); the model is
            NCDHW again afterwards.
        max_steps: optional cap on steps (tests).
        log_every_s: progress log interval.
        clip_grad_norm: optional gradient norm clip (nnU-Net: 12).
        precision: ``"fp32"``, ``"bf16"`` or ``"auto"`` (:func:`vnas_monai.engine.resolve_precision`): the forward
            pass under CPU autocast (convolutions in bfloat16 on oneDNN's AMX / AVX-512 kernels; the loss and the
            weights stay fp32; no gradient scaler is needed).
        ema_decay: optional: keep an exponential moving average of the weights and floating buffers (decay ramped as
            ``min(ema_decay, (1 + t) / (10 + t))`` at step ``t``) and leave the model holding it at the end.

    Returns:
        ``{"steps", "epochs", "train_time_s", "final_loss", "mean_loss_last_100", "precision"}`` (``precision``: the
        one in effect, ``auto`` resolved).
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {sorted(SCHEDULES)}, got {schedule!r}.")
    policy = resolve_precision(precision, "cpu")  # refuses unknown values, naming the key
    if not budget_s > 0:
        raise ValueError(f"budget_s must be > 0, got {budget_s!r}.")
    if ema_decay is not None and not 0.0 < ema_decay < 1.0:
        raise ValueError(f"ema_decay must lie in (0, 1), got {ema_decay!r}.")
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    logger.info(keep_freed_memory())  # every method of a benchmark trains with the same allocator
    with computing_layout(model, channels_last):
        model.train()
        ema = WeightAverage(model, ema_decay) if ema_decay else None
        stats = _train_loop(model, loss_fn, optimizer, loader, budget_s, SCHEDULES[schedule], deep_supervision, fmt,
                            max_steps, log_every_s, clip_grad_norm, policy, ema)
        if ema is not None:
            ema.copy_to(model)
    model.eval()
    return {**stats, "precision": policy.name}


class WeightAverage:
    """An exponential moving average of a model's parameters and floating buffers (BN statistics), kept beside it.

    The average at step ``t`` moves by ``1 - min(decay, (1 + t) / (10 + t))``, so that the first steps (random
    weights) are forgotten quickly. Not ``torch.optim.swa_utils.AveragedModel``: with ``use_buffers`` it applies the
    average to every buffer, integer ``num_batches_tracked`` included, and it keeps a deep copy of the module where
    this keeps only the floating tensors (one ``_foreach_lerp_`` per step).
    """

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay, self.updates = float(decay), 0
        self.tensors = [t for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()]
        self.shadow = [t.detach().clone() for t in self.tensors]

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(self.shadow, [t.detach() for t in self.tensors], 1.0 - decay)

    @torch.no_grad()
    def copy_to(self, model: torch.nn.Module) -> None:
        for t, s in zip(self.tensors, self.shadow):
            t.copy_(s)


def _train_loop(model, loss_fn, optimizer, loader, budget_s, factor, deep_supervision, fmt, max_steps, log_every_s,
                clip_grad_norm, policy, ema=None) -> dict[str, Any]:
    """The steps of :func:`train_budgeted` (its arguments, resolved)."""
    base = [g["lr"] for g in optimizer.param_groups]
    start = last_log = time.perf_counter()
    steps = epochs = 0
    losses: list[float] = []
    while True:
        for batch in loader:
            p = (time.perf_counter() - start) / budget_s
            for g, lr in zip(optimizer.param_groups, base):
                g["lr"] = lr * factor(p)
            x = batch["image"].as_tensor() if hasattr(batch["image"], "as_tensor") else batch["image"]
            y = batch["label"].as_tensor() if hasattr(batch["label"], "as_tensor") else batch["label"]
            optimizer.zero_grad(set_to_none=True)
            with policy.autocast():
                out = model(x.float().contiguous(memory_format=fmt))
            out = out.float()
            loss = _deep_supervision_loss(loss_fn, out, y) if deep_supervision else loss_fn(out, y)
            loss.backward()
            if clip_grad_norm:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
            optimizer.step()
            if ema is not None:
                ema.update()
            steps += 1
            losses.append(float(loss.detach()))
            now = time.perf_counter()
            if now - last_log >= log_every_s:
                last_log = now
                logger.info("step %d (epoch %d) %.0f/%.0f s loss %.4f lr %.2e", steps, epochs, now - start, budget_s,
                            sum(losses[-50:]) / len(losses[-50:]), optimizer.param_groups[0]["lr"])
            if now - start >= budget_s or (max_steps is not None and steps >= max_steps):
                tail = losses[-100:]
                return {"steps": steps, "epochs": epochs + 1, "train_time_s": round(now - start, 2),
                        "final_loss": losses[-1], "mean_loss_last_100": sum(tail) / len(tail)}
        epochs += 1


def predict_cases(
    model: torch.nn.Module,
    dataset: Any,
    roi_size: Sequence[int],
    overlap: float = 0.5,
    sw_batch_size: int = 4,
) -> Any:
    """Sliding-window (gaussian-blended) label maps of preprocessed cases: yields ``(item, pred)`` with ``pred``
    (1, *shape) int64, ``item["image"]`` (1, *shape)."""
    from monai.inferers import sliding_window_inference

    model.eval()
    with torch.no_grad():
        for i in range(len(dataset)):
            item = dataset[i]
            x = item["image"][None].float()
            logits = sliding_window_inference(x, list(roi_size), sw_batch_size, model, overlap=overlap, mode="gaussian")
            yield item, logits[0].argmax(0, keepdim=True)


def save_checkpoint(model: torch.nn.Module, path: str | os.PathLike) -> Path:
    """Write ``model.state_dict()`` atomically (loadable with ``torch.load(path, weights_only=True)``)."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return atomic_write(path, lambda f: torch.save(state, f))


def model_cost(model: torch.nn.Module, roi_size: Sequence[int], in_channels: int = 1) -> dict[str, int]:
    """Parameters and convolution MACs of one forward pass at ``roi_size`` (eval mode, one zero input: a copy on the
    meta device is not possible for every network, e.g. ``DynUNet`` keeps its last deep supervision outputs)."""
    from vnas_monai.networks.cost import conv_mac_counter

    params = sum(p.numel() for p in model.parameters())
    was_training = model.training
    model.eval()
    with conv_mac_counter(model) as total, torch.no_grad():
        model(torch.zeros(1, in_channels, *roi_size))
    model.train(was_training)
    return {"params": int(params), "macs": int(total[0])}


def log_recipe(name: str, recipe: Mapping[str, Any]) -> None:
    logger.info("%s recipe: %s", name, ", ".join(f"{k}={v}" for k, v in recipe.items()))
