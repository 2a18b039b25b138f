"""MB-NAS as methods of ``python -m vnas_monai benchmark`` (Bosma et al., "Mixed-Block Neural Architecture Search
for Medical Image Segmentation", SPIE Medical Imaging 2022), beside the 3D baselines and V-NAS, at the same budget.

Each method works on the benchmark's plan: the trials and the retraining read the volumes the plan preprocesses (its
spacing and normalisation, :class:`PlanVolumes`), the patch is the plan's median in-plane shape padded to the
network's divisor, the flips are the plan's in-plane ones. Within the method's wall-clock budget:

* ``mbnas`` / ``mbnas_micro`` / ``mbnas_macro``: a local search from the U-Net (:func:`.workflow.run_search`, the
  restriction of §2.4) for :data:`SEARCH_FRACTION` of the budget, each trial the paper's recipe for
  :data:`TRIAL_EPOCHS` x :data:`TRIAL_STEPS` iterations on 4 of 5 inner folds of the fold's training cases, scored
  on the fifth; the number of trials is what the budget allows at the start trial's measured cost;
* ``mbnas_unet`` / ``mbnas_resunet``: the paper's references, no search;
* then the best (or reference) encoding retrained on all training cases for the rest of the budget, the epochs
  fitted to it so that the poly schedule ends with it (:func:`.workflow.retrain`: ``model.pt``, ``arch.json``,
  ``settings.json``, exportable to MONAI Label).

The benchmark evaluates the network like every method, by sliding window over the plan's volumes: the 2D network
runs on every axial slice of a window (:class:`SliceWise`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["PlanVolumes", "SEARCH_FRACTION", "SliceWise", "TRIAL_EPOCHS", "TRIAL_STEPS", "train_mbnas"]

#: of the budget, the local search's share (the rest retrains the best encoding)
SEARCH_FRACTION = 0.5
#: one trial: epochs x iterations of batch :data:`BATCH_SIZE` (the score averages the last 20 % of the epochs)
TRIAL_EPOCHS, TRIAL_STEPS = 8, 16
#: the recipe of the comparison on the MSD hippocampus (``benchmarks/results/mbnas_hippocampus/``): the paper's batch,
#: Adam at 1e-2 (1e-3 leaves a 128-iteration U-Net at Dice 0.14 there), 8 channels at full resolution
BATCH_SIZE, LEARNING_RATE, INIT_CHANNELS = 32, 1e-2, 8
#: the network's depth: 10 nodes, at most 4 halvings (the paper's), so the in-plane patch is a multiple of 16
NUM_NODES, MAX_DOWNSAMPLINGS = 10, 4


class PlanVolumes:
    """The trial's volumes (:class:`vnas_monai.data.slices.Volume`) preprocessed by the benchmark's plan (the
    pipeline of :func:`vnas_monai.baselines.pipeline.eval_transforms`), through
    :func:`vnas_monai.data.slices.load_volumes` and its per-process cache; picklable, so a Dask worker preprocesses
    its own copy.

    Args:
        plan: the benchmark's plan.
    """

    def __init__(self, plan: Mapping[str, Any]) -> None:
        self.plan = dict(plan)

    def __call__(self, cases: Sequence[Mapping[str, Any]]) -> list:
        from vnas_monai.baselines.pipeline import eval_transforms
        from vnas_monai.data.slices import load_volumes

        return load_volumes(cases, None, transforms=lambda: eval_transforms(self.plan),
                            transforms_key="plan:" + json.dumps(self.plan, sort_keys=True))


class SliceWise(nn.Module):
    """A 2D network applied to every axial slice of a volume: (B, C, H, W, D) -> (B, K, H, W, D), for sliding-window
    inference over 3D windows (H and W multiples of the network's divisor, any D).

    Args:
        net: the 2D network, (N, C, H, W) -> (N, K, H, W).
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w, d = x.shape
        slices = x.permute(0, 4, 1, 2, 3).reshape(b * d, c, h, w)
        out = self.net(slices)
        return out.reshape(b, d, out.shape[1], h, w).permute(0, 2, 3, 4, 1)


def _trial(plan: Mapping[str, Any], cases: Sequence[Mapping[str, Any]], seed: int, max_downsamplings: int,
           **recipe: Any) -> Any:
    from .trial import SliceTrial

    divisor = 2**max_downsamplings
    patch = tuple(-(-int(s) // divisor) * divisor for s in plan["median_shape"][:2])
    volumes = PlanVolumes(plan)
    in_channels = int(volumes(cases[:1])[0].image.shape[0])
    return SliceTrial(cases, in_channels, len(plan["class_names"]), num_folds=5, fold_seed=int(seed),
                      patch_size=patch, **recipe, flip_axes=tuple(int(a) for a in plan["flip_axes"] if int(a) < 2),
                      volumes=volumes)


def _search(trial: Any, restriction: str, budget_s: float, out: Path, seed: int,
            shape: Mapping[str, int]) -> tuple[Any, dict[str, Any]]:
    """The local search under a time budget: the start trial first, then as many evaluations as its cost allows."""
    from .workflow import run_search

    t0 = time.perf_counter()
    first = run_search(trial, out, restriction, 1, seed=seed, progress=False, **shape)
    spent = time.perf_counter() - t0
    trial_s = max(spent, 1e-3) if first["trials_run"] else _archived_trial_s(out)
    evaluations = 1 + max(0, int((budget_s - spent) // trial_s))
    summary = run_search(trial, out, restriction, evaluations, seed=seed, progress=False, **shape)
    return Path(summary["arch"]), {**summary, "trial_s": round(trial_s, 2), "arch": str(summary["arch"])}


def _archived_trial_s(out: Path) -> float:
    """The mean wall time of the trials archived in ``out`` (a resumed search)."""
    times = [json.loads(line).get("wall_s") for line in (out / "trials.jsonl").read_text().splitlines() if line]
    times = [t for t in times if isinstance(t, (int, float))]
    return float(np.mean(times)) if times else 60.0


def train_mbnas(plan: Mapping[str, Any], splits: Mapping[str, Any], budget_s: float, work_dir: str | os.PathLike,
                restriction: str | None = "mbnas", reference: str | None = None, seed: int = 0,
                trial_epochs: int = TRIAL_EPOCHS, trial_steps: int = TRIAL_STEPS, batch_size: int = BATCH_SIZE,
                learning_rate: float = LEARNING_RATE, init_channels: int = INIT_CHANNELS, num_nodes: int = NUM_NODES,
                max_downsamplings: int = MAX_DOWNSAMPLINGS) -> Any:
    """A benchmark method (module docstring): search with ``restriction`` (or train the ``reference`` encoding,
    ``"U-Net"`` / ``"ResU-Net"``), then retrain for the rest of ``budget_s``; returns a
    :class:`vnas_monai.baselines.TrainedModel` of the :class:`SliceWise` network. The keyword arguments after
    ``seed`` are the trial's recipe and the network's shape (defaults: the module constants)."""
    from vnas_monai.baselines import TrainedModel, model_cost

    from .compare import reference_encodings
    from .encoding import MBNASEncoding
    from .network import MBNASNet
    from .workflow import retrain

    start, out = time.perf_counter(), Path(work_dir)
    cases = list(splits["trainval"])
    trial = _trial(plan, cases, seed, max_downsamplings, batch_size=batch_size, learning_rate=learning_rate,
                   epochs=trial_epochs, steps_per_epoch=trial_steps, init_channels=init_channels)
    shape = {"num_nodes": num_nodes, "max_downsamplings": max_downsamplings}
    if reference is not None:
        arch, search = reference_encodings(**shape)[reference], {}
        step_s = None
    else:
        arch, search = _search(trial, restriction, SEARCH_FRACTION * budget_s, out / "search", seed, shape)
        step_s = search["trial_s"] / (trial_epochs * trial_steps)
    if step_s is None:  # no trial was run: time one short training
        t = time.perf_counter()
        dataclasses.replace(trial, epochs=1, steps_per_epoch=4).train(arch, cases[:4], seed)
        step_s = (time.perf_counter() - t) / 4
    left = budget_s - (time.perf_counter() - start)
    # the poly schedule must end with the budget: epochs from the measured step time, the budget as a hard stop
    epochs = max(1, int(0.9 * left / (step_s * trial_steps)))
    recipe = dataclasses.replace(trial, max_seconds=max(left, 1.0))
    t_retrain = time.perf_counter()
    checkpoint = retrain(recipe, cases, arch, out / "train", seed=seed, epochs=epochs,
                         class_names=list(plan["class_names"]))
    train_s = time.perf_counter() - t_retrain
    settings = json.loads((out / "train" / "settings.json").read_text())
    enc = MBNASEncoding.resolve(arch)
    net = MBNASNet(enc, spatial_dims=2, in_channels=trial.in_channels, out_channels=trial.num_classes,
                   init_channels=trial.init_channels)
    net.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
    model = SliceWise(net).eval()
    roi = [*trial.patch_size, int(plan["patch_size"][2])]
    meta = {"recipe": {"optimizer": "Adam", "lr": trial.learning_rate, "schedule": "poly", "loss": "foreground Dice",
                       "batch_size": trial.batch_size, "slices": "2D axial", "patch": list(trial.patch_size),
                       "init_channels": trial.init_channels, "restriction": restriction, "reference": reference},
            "roi_size": roi, "architecture": enc.summary(), "digest": enc.digest(), "search": search,
            "steps": settings["training"]["steps"], "epochs": settings["training"]["epochs"],
            "train_time_s": round(time.perf_counter() - start, 2), "retrain_time_s": round(train_s, 2),
            **model_cost(model, roi, trial.in_channels)}
    return TrainedModel(model=model, roi_size=roi, checkpoint=checkpoint, meta=meta)


def _method(restriction: str | None = None, reference: str | None = None) -> Any:
    def method(plan: Mapping[str, Any], splits: Mapping[str, Any], budget_s: float, work_dir: str | os.PathLike,
               **kwargs: Any) -> Any:
        return train_mbnas(plan, splits, budget_s, work_dir, restriction=restriction, reference=reference, **kwargs)

    return method


train_mbnas_search = _method("mbnas")
train_micro = _method("micro")
train_macro = _method("macro")
train_unet2d = _method(reference="U-Net")
train_resunet2d = _method(reference="ResU-Net")
