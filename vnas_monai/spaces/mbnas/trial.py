"""One MB-NAS trial: train one encoding on one fold with one seed and score it (Bosma et al., "Mixed-Block Neural
Architecture Search for Medical Image Segmentation", SPIE Medical Imaging 2022, §2.3).

The paper's recipe: 2D slices of 128 x 128 in batches of 32, Adam at 1e-3 with poly decay (power 0.9), foreground
soft Dice (MONAI ``DiceLoss(include_background=False, softmax=True, to_onehot_y=True)``), augmentation by scaling,
shifting, rotation (``RandAffined``), flipping (``RandFlipd``) and brightness (``RandScaleIntensityd``,
``RandShiftIntensityd``); the score is the validation Dice averaged over the last 20 % of the training epochs.

The soft Dice is computed over the whole batch (``batch=True``, nnU-Net's batch Dice), not per slice and then
averaged (``batch_dice=False``): a slice that lacks a class scores that class 1 or 0 by a hair's breadth of
predicted voxels, and those per-slice terms make a short training noisy. On the MSD hippocampus (U-Net, 384
iterations at Adam 1e-2, batch 32, 48 x 64 slices) the validation Dice went from 0.565 / 0.681 (seeds 0 / 1,
per-slice Dice) to 0.776 / 0.801 with batch Dice
(``benchmarks/mbnas_trial_noise.py``).

:class:`SliceTrial` is the trial function of :func:`vnas_monai.strategies.run_local_search`: a frozen dataclass (so
Dask ships it by pickle) called as ``trial(encoding, fold, seed)``. Its ``cases`` (the search's training set) are
split into ``num_folds`` seeded folds (:func:`vnas_monai.data.make_folds`); a trial trains on all folds but ``fold``
on the slices of :func:`vnas_monai.data.slices.training_slices` and, after every epoch, computes the Dice of
every volume of fold ``fold`` (all its axial slices, padded to the network's divisor, per foreground class, then
the mean over classes and volumes): validation is per held-out volume, not per slice. Only the scored epochs
(the last 20 %) are validated, every epoch under a ``max_seconds`` budget. ``seed`` seeds the network's
initialisation, the background slices, the batch order and the augmentation, so a trial on the CPU is a function of
its arguments. The device is ``cuda`` when one is visible (on a Dask GPU worker: the worker's own), the precision
``auto`` as everywhere in the package (:func:`vnas_monai.engine.resolve_precision`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vnas_monai.data.slices import SliceSet, centre_fit, load_volumes, pad_to_multiple, training_slices

from .cost import cost_report
from .encoding import MBNASEncoding
from .network import build_network

__all__ = ["SliceTrial", "augmentation", "last_fraction_mean", "volume_dice"]

#: the epochs whose validation Dice is averaged into the score (§2.3: the last 20 %)
SCORE_FRACTION = 0.2


def last_fraction_mean(values: Sequence[float], fraction: float = SCORE_FRACTION) -> float:
    """The mean of the last ``ceil(fraction * len(values))`` values (at least one)."""
    if not values:
        raise ValueError("no validation value to average: the trial ran no epoch.")
    n = max(1, math.ceil(fraction * len(values)))
    return float(np.mean(values[-n:]))


def volume_dice(pred: torch.Tensor, label: torch.Tensor, num_classes: int) -> float:
    """Mean foreground Dice of one volume's label maps (classes absent from both maps are left out; 0 if all)."""
    values = []
    for c in range(1, num_classes):
        p, y = pred == c, label == c
        total = int(p.sum()) + int(y.sum())
        if total:
            values.append(2.0 * int((p & y).sum()) / total)
    return float(np.mean(values)) if values else 0.0


def augmentation(spatial_dims: int, flip_axes: Sequence[int] = (0,), prob: float = 0.5) -> Any:
    """The paper's augmentation (module docstring) as a MONAI ``Compose`` of dictionary transforms."""
    from monai.transforms import Compose, RandAffined, RandFlipd, RandScaleIntensityd, RandShiftIntensityd

    keys = ["image", "label"]
    rotate = (math.pi / 12,) if spatial_dims == 2 else (math.pi / 12,) * 3
    transforms = [RandAffined(keys=keys, prob=prob, rotate_range=rotate, scale_range=(0.15,) * spatial_dims,
                              translate_range=(0.1,) * spatial_dims, mode=["bilinear", "nearest"],
                              padding_mode="zeros")]
    for axis in flip_axes:
        if not 0 <= int(axis) < spatial_dims:
            raise ValueError(f"flip_axes {list(flip_axes)}: axis {axis} is not a spatial axis of {spatial_dims}D "
                             "samples (key 'flip_axes').")
        transforms.append(RandFlipd(keys=keys, prob=prob, spatial_axis=int(axis)))
    transforms += [RandScaleIntensityd(keys="image", factors=0.1, prob=prob),
                   RandShiftIntensityd(keys="image", offsets=0.1, prob=prob)]
    return Compose(transforms)


class _Samples(torch.utils.data.Dataset):
    def __init__(self, data: SliceSet, transform: Any):
        self.data, self.transform = data, transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = {"image": self.data.images[i], "label": self.data.labels[i].float()}
        if self.transform is not None:
            item = self.transform(item)
        return {"image": torch.as_tensor(item["image"]).float(), "label": torch.as_tensor(item["label"]).round()}


@dataclass(frozen=True)
class SliceTrial:
    """The MB-NAS trial function (module docstring); every field is a setting of the recipe.

    Args:
        cases: the search's training cases (``{"image", "label"}`` paths), split into ``num_folds`` folds.
        in_channels: image channels (1: CT, 2: the MSD prostate's T2 and ADC).
        num_classes: classes, background included.
        num_folds, fold_seed: the folds of ``cases`` (trial ``fold`` validates on fold ``fold``).
        spatial_dims: 2 (axial slices, the paper) or 3 (whole volumes).
        patch_size: training input, ``(H, W)`` or ``(H, W, D)``, multiples of ``2 ** max_downsamplings``.
        slice_size: in-plane size the volumes are resized to (:func:`vnas_monai.data.slices.volume_transforms`).
        intensity_clip: CT window before the z-score; ``None`` for MRI.
        batch_size, learning_rate, poly_power: the optimiser (Adam, poly decay per iteration).
        epochs: the training budget; ``steps_per_epoch``: iterations per epoch (``None``: one pass over the slices).
        max_seconds: an optional wall-clock budget; the training stops after the epoch that passes it.
        init_channels: channels at full resolution; ``act``, ``norm``: the blocks' (:mod:`.blocks`).
        background_fraction: of the slices without foreground, the fraction trained on.
        batch_dice: the soft Dice over the batch (module docstring) or per sample.
        flip_axes: the in-plane axes of the random flips (leave out an axis whose flip swaps two labels).
        device: ``"auto"`` (``cuda`` when visible), ``"cpu"``, ``"cuda"``; ``precision``: ``auto``/``fp32``/...
        memory_format: ``"auto"`` (channels-last on a CPU, where it measured 1.36x (2D) and 1.51x (3D) faster per
            U-Net training step in float32, ``benchmarks/results/mbnas_hippocampus/README.md``; the default layout on
            a GPU), ``"channels_last"`` or ``"contiguous"``.
        num_workers: data-loader processes (0: in the trial's process).
        volumes: ``volumes(cases) -> [Volume]``, a picklable callable that preprocesses the cases in place of
            :func:`vnas_monai.data.slices.load_volumes` (``slice_size`` and ``intensity_clip`` then unused), e.g.
            :class:`.benchmark.PlanVolumes`; ``None``: the retraining's own preprocessing.
    """

    cases: tuple
    in_channels: int = 1
    num_classes: int = 2
    num_folds: int = 5
    fold_seed: int = 0
    spatial_dims: int = 2
    patch_size: tuple = (128, 128)
    slice_size: tuple | None = None
    intensity_clip: tuple | None = None
    batch_size: int = 32
    learning_rate: float = 1e-3
    poly_power: float = 0.9
    epochs: int = 50
    steps_per_epoch: int | None = None
    max_seconds: float | None = None
    init_channels: int = 16
    act: Any = "relu"
    norm: Any = "batch"
    background_fraction: float = 0.1
    batch_dice: bool = True
    flip_axes: tuple = (0,)
    device: str = "auto"
    precision: str = "auto"
    memory_format: str = "auto"
    num_workers: int = 0
    volumes: Any = None

    def __post_init__(self) -> None:
        for name in ("cases", "patch_size", "flip_axes"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        for name in ("slice_size", "intensity_clip"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "cases", tuple(dict(c) for c in self.cases))
        if self.spatial_dims not in (2, 3) or len(self.patch_size) != self.spatial_dims:
            raise ValueError(f"spatial_dims={self.spatial_dims} needs patch_size of {self.spatial_dims} sizes, got "
                             f"{list(self.patch_size)} (keys 'spatial_dims', 'patch_size').")
        if int(self.epochs) < 1 or int(self.batch_size) < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {self.epochs} and {self.batch_size}.")
        if self.memory_format not in ("auto", "channels_last", "contiguous"):
            raise ValueError(f"memory_format={self.memory_format!r}: it must be 'auto', 'channels_last' or "
                             "'contiguous' (key 'memory_format').")
        if len(self.cases) < int(self.num_folds) or int(self.num_folds) < 2:
            raise ValueError(f"num_folds={self.num_folds} needs 2 <= num_folds <= the {len(self.cases)} training "
                             "cases (key 'num_search_folds').")

    # ----------------------------------------------------------------- data
    def split(self, fold: int) -> tuple[list[dict], list[dict]]:
        """``(train, val)`` cases of trial fold ``fold``."""
        from vnas_monai.data.folds import make_folds

        folds = make_folds(list(self.cases), num_folds=int(self.num_folds), seed=int(self.fold_seed))["folds"]
        if not 0 <= int(fold) < len(folds):
            raise ValueError(f"fold {fold} is not in range({len(folds)}) (key 'search_folds', num_search_folds="
                             f"{self.num_folds}).")
        train = [c for f, cases in enumerate(folds) if f != fold for c in cases]
        return train, list(folds[fold])

    def layout(self, device: torch.device) -> torch.memory_format:
        """The memory format of the network and its inputs on ``device`` (``memory_format``)."""
        if self.memory_format == "contiguous" or (self.memory_format == "auto" and device.type != "cpu"):
            return torch.contiguous_format
        return torch.channels_last if self.spatial_dims == 2 else torch.channels_last_3d

    def _volumes(self, cases: Sequence[Mapping[str, Any]]) -> list:
        if self.volumes is not None:
            return list(self.volumes(cases))
        return load_volumes(cases, int(self.in_channels), self.slice_size, self.intensity_clip)

    # ----------------------------------------------------------------- training
    def train(self, encoding: Any, train_cases: Sequence[Mapping[str, Any]], seed: int,
              val_cases: Sequence[Mapping[str, Any]] = (), log: Any = None) -> tuple[torch.nn.Module, dict[str, Any]]:
        """Train ``encoding`` from scratch on ``train_cases``; validate on ``val_cases`` after the scored epochs
        (every epoch under ``max_seconds``).

        Returns:
            ``(network, info)``: the trained network (eval mode, on the device) and ``{"val_dice": [each validated
            epoch], "epochs", "steps", "device", "precision", "train_samples", "val_cases"}``.
        """
        from monai.losses import DiceLoss

        from vnas_monai.engine import PolyLR, float_logits, resolve_precision, select_device

        enc = MBNASEncoding.resolve(encoding)
        device = select_device(self.device)
        policy = resolve_precision(self.precision, device)
        data = training_slices(self._volumes(train_cases), self.patch_size, self.background_fraction, seed)
        val_volumes = self._volumes(val_cases) if val_cases else []
        torch.manual_seed(int(seed))
        net = build_network(enc, self.spatial_dims, int(self.in_channels), int(self.num_classes),
                            int(self.init_channels), self.act, self.norm).to(device)
        layout = self.layout(device)
        net = net.to(memory_format=layout)
        transform = augmentation(self.spatial_dims, self.flip_axes)
        transform.set_random_state(seed=int(seed) % 2**32)
        loader = torch.utils.data.DataLoader(
            _Samples(data, transform), batch_size=int(self.batch_size), shuffle=True,
            drop_last=len(data) > int(self.batch_size), num_workers=int(self.num_workers),
            generator=torch.Generator().manual_seed(int(seed)))
        steps = int(self.steps_per_epoch or len(loader))
        optimizer = torch.optim.Adam(net.parameters(), lr=float(self.learning_rate))
        schedule = PolyLR(optimizer, total_iters=int(self.epochs) * steps, power=float(self.poly_power))
        scaler = policy.grad_scaler()
        loss_fn = DiceLoss(include_background=False, softmax=True, to_onehot_y=True, batch=bool(self.batch_dice))
        start, dice, done = time.perf_counter(), [], 0
        # only the scored epochs are validated (all of them under a time budget, whose last epoch is not known)
        first_scored = int(self.epochs) - max(1, math.ceil(SCORE_FRACTION * int(self.epochs)))
        batches = iter(loader)
        for epoch in range(int(self.epochs)):
            net.train()
            for _ in range(steps):
                try:
                    batch = next(batches)
                except StopIteration:
                    batches = iter(loader)
                    batch = next(batches)
                x, y = batch["image"].to(device).contiguous(memory_format=layout), batch["label"].to(device)
                optimizer.zero_grad(set_to_none=True)
                with policy.autocast():
                    out = net(x)
                loss = loss_fn(float_logits(out), y)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                schedule.step()
                done += 1
            if val_volumes and (self.max_seconds is not None or epoch >= first_scored):
                dice.append(self.validate(net, val_volumes, device, policy))
                if log is not None:
                    log(f"epoch {epoch + 1}/{self.epochs}: loss {float(loss):.4f}, val Dice {dice[-1]:.4f}")
            if self.max_seconds is not None and time.perf_counter() - start > float(self.max_seconds):
                break
        net.eval()
        return net, {"val_dice": dice, "epochs": epoch + 1, "steps": done, "device": str(device),
                     "precision": policy.name, "train_samples": len(data), "val_cases": len(val_volumes)}

    @torch.no_grad()
    def predict(self, net: torch.nn.Module, image: np.ndarray, device: Any, policy: Any) -> torch.Tensor:
        """The label map (H, W, D) of one preprocessed volume ``image`` (C, H, W, D): 2D networks slice by slice
        (padded in-plane to the divisor), 3D ones on the whole padded volume."""
        net.eval()
        divisor, layout = int(getattr(net, "divisor", 1)), self.layout(torch.device(device))
        h, w, d = image.shape[1:]
        with policy.autocast():
            if self.spatial_dims == 2:
                from vnas_monai.data.slices import Volume

                x, _ = pad_to_multiple(Volume(image, np.zeros(image.shape[1:], np.uint8), ""), divisor)
                logits = torch.cat([net(x[i:i + 64].to(device).contiguous(memory_format=layout)).float().cpu()
                                    for i in range(0, len(x), 64)])
                pred = logits.argmax(1)  # (D, H', W')
                pred = torch.from_numpy(centre_fit(pred.numpy(), (h, w))).permute(1, 2, 0)
            else:
                size = [-(-s // divisor) * divisor for s in (h, w, d)]
                x = torch.from_numpy(np.ascontiguousarray(centre_fit(image, size)))[None].to(device)
                x = x.contiguous(memory_format=layout)
                pred = net(x).float().argmax(1)[0].cpu()
                pred = torch.from_numpy(centre_fit(pred.numpy(), (h, w, d)))
        return pred

    def validate(self, net: torch.nn.Module, volumes: Sequence[Any], device: Any, policy: Any) -> float:
        """Mean per-volume foreground Dice of ``volumes`` (:func:`volume_dice`)."""
        values = [volume_dice(self.predict(net, v.image, device, policy), torch.from_numpy(v.label.astype(np.int64)),
                              int(self.num_classes)) for v in volumes]
        net.train()
        return float(np.mean(values))

    # ----------------------------------------------------------------- the trial
    def __call__(self, encoding: Any, fold: int, seed: int) -> dict[str, Any]:
        """Train ``encoding`` on trial fold ``fold`` with ``seed``; returns ``score`` (the mean validation Dice of
        the last 20 % of the epochs) and ``val_dice``, ``epochs``, ``steps``, ``params``, ``macs``, ``mmacs``,
        ``time_s``, ``device``, ``precision``, ``train_samples``, ``val_cases``."""
        start = time.perf_counter()
        train_cases, val_cases = self.split(int(fold))
        _, info = self.train(encoding, train_cases, int(seed), val_cases)
        cost = cost_report(encoding, self.patch_size, int(self.in_channels), int(self.num_classes),
                           int(self.init_channels), act=self.act, norm=self.norm)
        # without a time budget only the scored epochs were validated; with one, every epoch (keep its last 20 %)
        values = info["val_dice"]
        score = float(np.mean(values)) if self.max_seconds is None else last_fraction_mean(values)
        return {"score": score, **info, "params": cost["params"],
                "macs": cost["macs"], "mmacs": cost["mmacs"], "time_s": time.perf_counter() - start}
