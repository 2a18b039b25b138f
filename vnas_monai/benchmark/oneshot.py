"""Scoring V-NAS architectures with a trained supernet's shared weights (one-shot evaluation, issue 14).

Li & Talwalkar 2019 ("Random Search and Reproducibility for NAS") and Guo et al. 2020 (SPOS, "Single Path One-Shot
NAS with Uniform Sampling") rank candidates by their validation score with weights inherited from a supernet; Guo et
al. recompute each candidate's batch-norm statistics first, because the shared running statistics average over every
path. :func:`score_architectures` does both on the benchmark's S_train / S_val.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

__all__ = ["recalibrate_batch_norm", "score_architectures", "val_dice"]


def recalibrate_batch_norm(net: torch.nn.Module, batches: Sequence[torch.Tensor], precision: Any) -> None:
    """Recompute every batch norm's running statistics of ``net`` as the plain average over ``batches`` (each
    (B, C, *roi)), in training mode without gradients; ``net`` is left in eval mode."""
    norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches
    net.train()
    with torch.no_grad(), precision.autocast():
        for x in batches:
            net(x)
    net.eval()


def val_dice(net: torch.nn.Module, dataset: Any, roi_size: Sequence[int], num_classes: int, precision: Any) -> float:
    """Mean over cases of the per-case mean foreground Dice of ``net``'s sliding-window prediction (the benchmark's
    :func:`~vnas_monai.baselines.training.predict_cases`), by MONAI's ``compute_dice``; a class absent from a case's
    label is left out of its mean (:func:`vnas_monai.evaluation.tables.case_mean`), as in the benchmark's tables."""
    import math

    from monai.metrics import compute_dice
    from monai.networks.utils import one_hot

    from vnas_monai.baselines.training import predict_cases
    from vnas_monai.evaluation.tables import case_mean

    cases = []
    with precision.autocast():
        for item, pred in predict_cases(net, dataset, roi_size):
            label = item["label"].long()
            dice = compute_dice(one_hot(pred[None], num_classes), one_hot(label[None], num_classes),
                                include_background=False, ignore_empty=True)[0]
            mean = case_mean(dice.tolist())
            if not math.isnan(mean):
                cases.append(mean)
    return sum(cases) / max(len(cases), 1)


def score_architectures(supernet: torch.nn.Module, architectures: Sequence[Any], plan: Mapping[str, Any],
                        splits: Mapping[str, Sequence[Mapping[str, Any]]], bn_batches: int = 20, seed: int = 0,
                        roi_size: Sequence[int] | None = None, batch_size: int = 2) -> list[float]:
    """S_val mean Dice of each architecture with the supernet's weights (``VNASNet.from_supernet``) and batch-norm
    statistics recomputed on the same ``bn_batches`` S_train batches for every candidate.

    Returns:
        One score in [0, 1] per architecture, in order.
    """
    from vnas_monai.baselines.pipeline import eval_dataset, make_loader
    from vnas_monai.engine import resolve_precision
    from vnas_monai.networks.layers import computing_layout
    from vnas_monai.plan import fit_patch_size
    from vnas_monai.spaces.vnas import DIVISOR, VNASNet

    roi = list(roi_size or fit_patch_size(plan["median_shape"], DIVISOR))
    precision = resolve_precision("auto", "cpu")
    loader = make_loader(splits["train"], plan, roi, batch_size, 1, seed=seed)
    batches = []
    for batch in loader:
        batches.append(batch["image"].float().contiguous(memory_format=torch.channels_last_3d))
        if len(batches) >= bn_batches:
            break
    val = eval_dataset(splits["val"], plan)
    scores = []
    for arch in architectures:
        net = VNASNet.from_supernet(supernet, arch)
        with computing_layout(net, channels_last=True):
            recalibrate_batch_norm(net, batches, precision)
            scores.append(val_dice(net, val, roi, len(plan["class_names"]), precision))
    return scores
