"""MONAI ``DynUNet`` configured nnU-Net-style from the plan, with nnU-Net's recipe.

Topology: nnU-Net v1's rule (Isensee et al., Nature Methods 2021; ``get_pool_and_conv_props`` of its
``ExperimentPlanner3D_v21``), as MONAI's DynUNet tutorial (``modules/dynunet_pipeline``) applies it: starting from the
median (resampled) case shape as the patch, pool an axis by 2 while its spacing is less than twice the finest
current spacing and its feature map stays >= 8 voxels (so >= 4 after pooling); convolutions are 3 along axes whose
spacing is within 2x of each other and 1 along a much coarser axis; the bottleneck is 3x3x3; the patch is padded to
the product of the strides per axis. Filters 32, 64, ... capped at 320.

Recipe (nnU-Net): SGD with Nesterov momentum 0.99, lr 1e-2, weight decay 3e-5, poly decay (power 0.9) stretched
over the budget, gradient-norm clip 12, DiceCE, deep supervision (heads weighted 1, 1/2, 1/4, normalised), random
rotation / scaling, gaussian noise, intensity scaling, contrast (gamma) and flips on the plan's safe axes. Batch: 2
patches from 2 cases, nnU-Net's default 3D batch size (its 32-filter full-resolution levels make a step about 5x a
UNet step on CPU; a time budget favours more steps over the plan's larger batch). Mixed precision as nnU-Net
trains (AMP), precision ``auto``: bfloat16 autocast on a CPU with bf16 matrix hardware (AMX), 4.2x faster there
(9.0 -> 2.1 s per step at 2 x 40x56x40, 1 thread); float32 on other CPUs.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from vnas_monai.plan.rules import fit_patch_size

from .common import fit, make_optimizer
from .training import TrainedModel

__all__ = ["DYNUNET_RECIPE", "nnunet_topology", "build_dynunet", "train_dynunet"]

DYNUNET_RECIPE: dict[str, Any] = {"optimizer": "SGD nesterov", "lr": 1e-2, "momentum": 0.99, "weight_decay": 3e-5,
                                  "schedule": "poly", "loss": "DiceCE", "deep_supervision": True,
                                  "clip_grad_norm": 12.0, "augmentation": "affine + intensity + flips",
                                  "batch_size": 2, "num_samples": 1, "precision": "auto"}
MIN_FEATURE_MAP = 4
MAX_POOLS = 5
MAX_FILTERS = 320


def nnunet_topology(
    spacing: Sequence[float], patch_size: Sequence[int], min_feature_map: int = MIN_FEATURE_MAP,
    max_pools: int = MAX_POOLS,
) -> dict[str, Any]:
    """Kernels, strides and the padded patch of nnU-Net v1's planner.

    Args:
        spacing: target spacing (mm), 3 floats.
        patch_size: initial patch (voxels), e.g. the plan's median shape.
        min_feature_map: smallest feature map edge after pooling.
        max_pools: most poolings per axis.

    Returns:
        ``{"kernel_size": [[k, k, k], ...] (levels + 1), "strides": [[1, 1, 1], [s, s, s], ...] (levels + 1),
        "patch_size": [x, y, z] (padded to the strides' product), "divisible_by": [dx, dy, dz]}``.
    """
    cur_sp, cur_sz = [float(s) for s in spacing], [float(s) for s in patch_size]
    pools, kernels, npool = [], [], [0, 0, 0]
    while True:
        min_sp = min(cur_sp)
        axes: list[int] = []
        for a in range(3):
            partners = [i for i in range(3) if cur_sp[i] / cur_sp[a] < 2 and cur_sp[a] / cur_sp[i] < 2]
            if len(partners) > len(axes):
                axes = partners
        kernel = [3 if i in axes else 1 for i in range(3)]
        valid = [i for i in range(3) if cur_sp[i] / min_sp < 2 and cur_sz[i] >= 2 * min_feature_map
                 and npool[i] < max_pools]
        if not valid:
            break
        stride = [2 if i in valid else 1 for i in range(3)]
        for i in valid:
            npool[i] += 1
            cur_sp[i] *= 2
            cur_sz[i] = math.ceil(cur_sz[i] / 2)
        pools.append(stride)
        kernels.append(kernel)
    kernels.append([3, 3, 3])
    div = [2**n for n in npool]
    patch = [int(math.ceil(p / d) * d) for p, d in zip(patch_size, div)]
    return {"kernel_size": kernels, "strides": [[1, 1, 1], *pools], "patch_size": patch, "divisible_by": div}


def build_dynunet(topology: Mapping[str, Any], in_channels: int, num_classes: int, deep_supr_num: int = 2):
    """``DynUNet`` of a topology: (B, in_channels, *patch) -> (B, num_classes, *patch) in eval mode, and
    (B, 1 + deep_supr_num, num_classes, *patch) in training mode (deep supervision heads upsampled)."""
    from monai.networks.nets import DynUNet

    levels = len(topology["strides"])
    filters = [min(32 * 2**i, MAX_FILTERS) for i in range(levels)]
    supr = max(1, min(deep_supr_num, levels - 2))
    return DynUNet(
        3, in_channels, num_classes, kernel_size=topology["kernel_size"], strides=topology["strides"],
        upsample_kernel_size=topology["strides"][1:], filters=filters, norm_name=("INSTANCE", {"affine": True}),
        deep_supervision=True, deep_supr_num=supr, res_block=False,
    )


def train_dynunet(
    plan: Mapping[str, Any],
    splits: Mapping[str, Sequence[Mapping[str, Any]]],
    budget_s: float,
    work_dir: str | os.PathLike,
    seed: int = 0,
    max_steps: int | None = None,
) -> TrainedModel:
    """Train the nnU-Net-style DynUNet within ``budget_s`` seconds (benchmark method ``dynunet``)."""
    from monai.losses import DiceCELoss

    torch.manual_seed(seed)
    start = fit_patch_size(plan["median_shape"], 1, max_voxels=128**3)  # nnU-Net starts from the median shape
    topo = nnunet_topology(plan["spacing"], start)
    model = build_dynunet(topo, 1, len(plan["class_names"]))
    r = DYNUNET_RECIPE
    optimizer = make_optimizer(model.parameters(), r)
    loss = DiceCELoss(to_onehot_y=True, softmax=True)
    recipe = {**r, "kernel_size": topo["kernel_size"], "strides": topo["strides"]}
    trained = fit("dynunet", model, loss, optimizer, plan, splits, budget_s, work_dir, recipe, topo["patch_size"],
                  seed, max_steps, intensity=True, affine=True)
    trained.meta["topology"] = topo
    return trained
