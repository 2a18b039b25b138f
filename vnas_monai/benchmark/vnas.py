"""V-NAS as benchmark methods, on the same plan, fold and pipeline as the baselines (issue 14).

- ``vnas``: the search (paper Alg. 1, first-order DARTS: SGD weight step on S_train, Adam architecture step on
  S_val) for ``search_fraction`` of the budget (5 %), then the derived architecture retrained on S_train + S_val for
  the rest. The search's time is part of the budget. The retraining starts from scratch (``init="scratch"``, the
  paper and the default) or from the supernet's weights of the kept candidates (``init="supernet"``:
  ``supernet.pt``).
- ``vnas_random1`` .. ``vnas_random3``: three seeded random architectures, each trained for the whole budget
  (Li & Talwalkar 2019: the baseline a search must beat); ``vnas_random4`` .. ``vnas_random6``: three more draws.
- ``vnas_mix``: the paper's "Mix" baseline, the supernet with alpha/beta frozen uniform, trained for the whole
  budget.

Every network is V-NAS's at ``init_filters`` 16 with a full-resolution stage after the head
(``full_resolution_channels`` 16: the paper's decoder ends at 1/2 resolution, coarse for structures a few voxels thick)
and the patch fitted to the plan's median shape in multiples of 32 (V-NAS reduces each axis 32-fold). The search
keeps the paper's weight step (SGD 0.05, cross-entropy) and adds a ramped entropy term to the architecture loss so
that it decides within its budget; the retraining uses recipe ``paper`` (SGD 0.05, momentum 0.9, weight decay 5e-4,
poly 0.9 over the budget, Dice + CE; the default, measured better here) or ``adam`` (MONAI's tutorial optimiser, Adam
1e-3, poly), in the precision ``auto`` picks, in batches of 2 cases x 1 patch (:data:`BATCH`), with intensity and
affine augmentation (:data:`AUGMENTATION`), evaluated with a moving average of its weights (:data:`EMA_DECAY`),
channels-last throughout
(:func:`vnas_monai.networks.layers.computing_layout`). Mix and the random architectures are retrained exactly as the
searched one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from vnas_monai.spaces.vnas.encoding import Architecture

__all__ = [
    "AUGMENTATION",
    "BATCH",
    "EMA_DECAY",
    "RECIPES",
    "VNAS_NETWORK",
    "random_architecture",
    "search_architecture",
    "train_architecture",
    "train_vnas",
    "train_vnas_mix",
    "train_vnas_random",
]

#: V-NAS's retraining recipes in the benchmark. ``paper`` (the default): the paper's SGD (§3.3: 0.05, momentum 0.9,
#: weight decay 5e-4, poly 0.9) with nnU-Net's DiceCE loss; ``adam``: MONAI's tutorial optimiser (Adam 1e-3; the one
#: that makes the UNet row reach 87.7) with a poly decay over the budget. Measured on the hippocampus (fold 0, a fixed
#: architecture, 10 min, 1 thread): paper 85.5 mean Dice, adam 83.5 (``benchmarks/results/vnas_retraining_recipes/``).
#: Both take batches of ``BATCH`` (2 cases, 1 patch each, as SegResNet's recipe) rather than the plan's 4 x 2: at
#: 10 minutes the same architecture reached 86.0 with 4 x 2 (1137 steps), 87.0 with 2 x 2, 87.3 with 4 x 1 and 87.4
#: with 2 x 1 (3477 steps): more, noisier steps win at a CPU budget. Both add ``AUGMENTATION`` (intensity: noise,
#: scale, contrast; affine: ``RandAffined``): the 30-minute ``vnas`` row gained 0.4 with it (87.5 -> 87.9).
#: ``EMA_DECAY``: the retrained weights are evaluated as their exponential moving average (decay 0.999, a horizon of
#: about 1,000 of some 8,000 steps): 30 minutes, 87.9 -> 88.1 (``results/benchmark_hippocampus_30min_seeds/``).
BATCH: dict[str, int] = {"batch_size": 2, "num_samples": 1}
AUGMENTATION: dict[str, bool] = {"intensity": True, "affine": True}
EMA_DECAY = 0.999
RECIPES: dict[str, dict[str, Any]] = {
    "adam": {"optimizer": "Adam", "lr": 1e-3, "schedule": "poly", "loss": "DiceCE", **BATCH, **AUGMENTATION,
             "ema_decay": EMA_DECAY},
    "paper": {"optimizer": "SGD", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4, "schedule": "poly",
              "loss": "DiceCE", **BATCH, **AUGMENTATION, "ema_decay": EMA_DECAY},
}
#: what shapes the benchmark's V-NAS networks: the stem width, and a full-resolution stage after the head (the
#: decoder ends at 1/2 resolution, coarse for a structure a few voxels thick; see ``FullResolutionRefine``). At 30
#: minutes a 16-channel stage gained 0.2 over 8 channels (87.9 -> 88.1); a wider stem (init_filters 24) none (87.9).
#: Deep supervision (``deep_supervision`` 3: pre-refine logits, 1/4, 1/8) stays off: with the 5 % search and a scratch
#: start it reached 88.0 against 88.6 without (its heads and losses cost 11 % of the steps).
VNAS_NETWORK: dict[str, Any] = {"init_filters": 16, "full_resolution_channels": 16}
#: the paper's architecture step: Adam 3e-4 over 40,000 iterations, i.e. at most about 12 per logit in total
PAPER_ARCH_LR, PAPER_ARCH_MOVE, MAX_ARCH_LR = 3e-4, 3e-4 * 40_000, 0.05
#: the share of the ``vnas`` method's budget that goes to the search, and how its retraining starts. Hippocampus, 30
#: minutes (``benchmarks/results/benchmark_hippocampus_30min_v3/``): search 20 % + supernet start 88.0; 5 % +
#: supernet start 88.2 / 88.1 (two seeds); 5 % + scratch 88.6 / 88.4. The search decides within 90 s (median margin
#: about 0.95), and the supernet's weights, trained for every candidate at once, are a worse start than the
#: zero-initialised residual cells of a fresh network (``VNASNet(zero_init_residual=True)``).
SEARCH_FRACTION, RETRAIN_INIT, RETRAIN_INITS = 0.05, "scratch", ("scratch", "supernet")
#: the entropy term of a budgeted search (``ArchEntropyPenalty``), ramped over its first half of architecture steps
ENTROPY_WEIGHT = 0.5


def _roi(plan: Mapping[str, Any]) -> list[int]:
    from vnas_monai.plan import fit_patch_size
    from vnas_monai.spaces.vnas import DIVISOR

    return fit_patch_size(plan["median_shape"], DIVISOR)


def _recipe(recipe: str, network: Mapping[str, Any]) -> dict[str, Any]:
    from vnas_monai.engine import resolve_precision

    if recipe not in RECIPES:
        raise ValueError(f"unknown V-NAS retraining recipe {recipe!r}; choose one of {sorted(RECIPES)}.")
    return dict(RECIPES[recipe], **network, recipe=recipe, precision=resolve_precision("auto", "cpu").name)


def _network_kwargs(plan: Mapping[str, Any], network: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict(in_channels=1, out_channels=len(plan["class_names"]), **(network or VNAS_NETWORK))


def _supernet_kwargs(plan: Mapping[str, Any], network: Mapping[str, Any] | None) -> dict[str, Any]:
    """The network's settings for the supernet: deep supervision is a retraining choice, the search's loss stays on
    the final logits."""
    return {k: v for k, v in _network_kwargs(plan, network).items() if k != "deep_supervision"}


def search_architecture(
    plan: Mapping[str, Any],
    splits: Mapping[str, Sequence[Mapping[str, Any]]],
    budget_s: float,
    work_dir: str | os.PathLike,
    seed: int = 0,
    warmup_fraction: float = 0.3,
    epoch_length: int = 10,
    arch_learning_rate: float | str = "scaled",
    max_steps: int | None = None,
    entropy_weight: float = ENTROPY_WEIGHT,
    network: Mapping[str, Any] | None = None,
    batch_size: int = BATCH["batch_size"],
    num_samples: int = BATCH["num_samples"],
) -> tuple[Architecture, dict[str, Any]]:
    """Alg. 1 on S_train / S_val within ``budget_s`` seconds; weight-only warm-up for ``warmup_fraction`` of it
    (1: no architecture step at all, e.g. a supernet trained on uniformly sampled paths for one-shot scoring).

    ``arch_learning_rate="scaled"`` gives the architecture the paper's total Adam movement in the steps the budget
    allows: Adam moves a logit by at most about its learning rate per step, and the paper's 3e-4 over its 40,000
    iterations allows 12; a budgeted search with N architecture steps gets ``12 / N`` (N estimated from the first
    epoch's time), capped at 0.05. With 3e-4 a few hundred CPU steps leave every probability near 1/3.
    ``entropy_weight`` > 0 adds :class:`vnas_monai.engine.ArchEntropyPenalty`, ramped over the first half of the
    estimated architecture steps, so that the derived cells are decided (margin >= 0.2) at the end of the budget.
    The weights take the paper's SGD step (the search's ranking is the paper's), on cross-entropy, in batches of
    ``batch_size`` cases x ``num_samples`` patches (S_train and S_val alike).

    Returns:
        The derived architecture (with probabilities, margins and decision) and the search's statistics.
    """
    from ignite.engine import Events

    from vnas_monai.baselines.common import make_optimizer
    from vnas_monai.baselines.pipeline import make_loader
    from vnas_monai.baselines.training import save_checkpoint
    from vnas_monai.engine import ArchEntropyPenalty
    from vnas_monai.engine import DiceCELoss as FastDiceCE
    from vnas_monai.engine import PolyLR, TimeBudget, VNASSearchTrainer
    from vnas_monai.networks.layers import computing_layout
    from vnas_monai.spaces.vnas import VNASSupernet

    torch.manual_seed(seed)
    roi = _roi(plan)
    # the retraining's batch: with init="supernet" the search's weight steps are the retraining's start
    train = make_loader(splits["train"], plan, roi, batch_size, num_samples, seed=seed)
    val = make_loader(splits["val"], plan, roi, batch_size, num_samples, seed=seed + 1)
    net = VNASSupernet(**_supernet_kwargs(plan, network))
    optimizer = make_optimizer(net.weight_parameters(), RECIPES["paper"])
    scaled = arch_learning_rate == "scaled"
    arch_optimizer = torch.optim.Adam(net.arch_parameters(), lr=PAPER_ARCH_LR if scaled else float(arch_learning_rate),
                                      weight_decay=1e-3)
    # epochs of epoch_length iterations; the warm-up is a number of epochs, estimated from the first epoch's time
    max_epochs = max(2, int(max_steps // epoch_length) if max_steps else 10**6)
    weights_only = warmup_fraction >= 1.0
    penalty = ArchEntropyPenalty(entropy_weight, ramp_steps=max(1, (max_steps or 0) // 2)) if entropy_weight else None
    trainer = VNASSearchTrainer(
        device="cpu", max_epochs=max_epochs, train_data_loader=train, network=net, optimizer=optimizer,
        loss_function=FastDiceCE(to_onehot_y=True, softmax=True, lambda_dice=0.0), arch_data_loader=val,
        arch_optimizer=arch_optimizer, arch_warmup_epochs=max_epochs if weights_only else 1, epoch_length=epoch_length,
        precision="auto", arch_penalty=penalty,
    )
    scheduler = PolyLR(optimizer, total_iters=max_epochs * epoch_length, power=0.9)
    start = time.perf_counter()
    if max_steps is None:
        TimeBudget(budget_s, lr_scheduler=scheduler, start=start).attach(trainer)

    def set_warmup(engine: Any) -> None:
        # weight-only warm-up for warmup_fraction of the budget, in epochs as timed by the first one
        if engine.state.epoch == 1 and max_steps is None and not weights_only:
            per_epoch = max(time.perf_counter() - start, 1e-6)
            engine.arch_warmup_epochs = max(1, int(warmup_fraction * budget_s / per_epoch))
            # an architecture step costs about as much as a weight step: half of an iteration's time
            steps = max(1.0, (1 - warmup_fraction) * budget_s / per_epoch * epoch_length / 2)
            if penalty is not None:
                penalty.ramp_steps = max(1, int(steps / 2))
            if scaled:
                for group in arch_optimizer.param_groups:
                    group["lr"] = min(MAX_ARCH_LR, PAPER_ARCH_MOVE / steps)

    trainer.add_event_handler(Events.EPOCH_COMPLETED, set_warmup)
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda _: scheduler.step())
    # channels-last throughout: a supernet weight step at 32x64x32, batch 8, bf16 takes 1.07 s against 1.13 s NCDHW
    # (benchmarks/results/layout_hippocampus_cpu.json)
    with computing_layout(net, channels_last=True):
        trainer.run()
    arch = net.derive()
    arch.meta["decision"] = arch.decision()
    path = arch.save(Path(work_dir) / "arch.json")
    supernet_path = save_checkpoint(net, Path(work_dir) / "supernet.pt")
    stats = {"search_s": round(time.perf_counter() - start, 2), "search_iterations": int(trainer.state.iteration),
             "arch_steps": int(trainer.state.arch_iteration), "arch_warmup_epochs": int(trainer.arch_warmup_epochs),
             "architecture": " | ".join(arch.to_paper()), "decision": arch.decision(), "arch_json": str(path),
             "supernet_checkpoint": str(supernet_path),
             "arch_learning_rate": arch_optimizer.param_groups[0]["lr"],
             "entropy_weight": entropy_weight, "entropy_ramp_steps": penalty.ramp_steps if penalty else 0,
             "search_batch": [batch_size, num_samples]}
    return arch, stats


def _retrain(name: str, net: torch.nn.Module, plan: Mapping[str, Any], splits: Mapping[str, Any], budget_s: float,
             work_dir: str | os.PathLike, seed: int, max_steps: int | None, extra: Mapping[str, Any],
             recipe: str = "paper", network: Mapping[str, Any] | None = None) -> Any:
    from monai.losses import DiceCELoss

    from vnas_monai.baselines.common import fit, make_optimizer

    settings = _recipe(recipe, network or VNAS_NETWORK)
    params = net.weight_parameters() if hasattr(net, "weight_parameters") else net.parameters()
    trained = fit(name, net, DiceCELoss(to_onehot_y=True, softmax=True), make_optimizer(params, settings), plan, splits,
                  budget_s, work_dir, settings, _roi(plan), seed, max_steps,
                  intensity=bool(settings.get("intensity", False)), affine=bool(settings.get("affine", False)))
    trained.meta.update(extra)
    return trained


def train_vnas(plan: Mapping[str, Any], splits: Mapping[str, Any], budget_s: float, work_dir: str | os.PathLike,
               seed: int = 0, max_steps: int | None = None, search_fraction: float = SEARCH_FRACTION,
               recipe: str = "paper", network: Mapping[str, Any] | None = None,
               entropy_weight: float = ENTROPY_WEIGHT, init: str = RETRAIN_INIT) -> Any:
    """Benchmark method ``vnas``: search for ``search_fraction`` of the budget, retrain for the rest.

    ``init``: ``"scratch"`` (the default and the paper, §3.3: the derived network is trained from a fresh
    initialisation) or ``"supernet"`` (it starts from the supernet's weights of the candidates it kept, moved by
    ``state_dict``; see :meth:`vnas_monai.spaces.vnas.VNASNet.from_supernet`; measured 0.3-0.4 lower, see
    :data:`SEARCH_FRACTION`).
    """
    from vnas_monai.spaces.vnas import VNASNet, VNASSupernet

    if init not in RETRAIN_INITS:
        raise ValueError(f"init must be one of {RETRAIN_INITS}, got {init!r}.")
    start = time.perf_counter()
    arch, stats = search_architecture(plan, splits, search_fraction * budget_s, work_dir, seed,
                                      max_steps=max_steps, entropy_weight=entropy_weight, network=network)
    torch.manual_seed(seed)
    kwargs = _network_kwargs(plan, network)
    if init == "supernet":
        supernet = VNASSupernet(**_supernet_kwargs(plan, network))
        supernet.load_state_dict(torch.load(stats["supernet_checkpoint"], weights_only=True))
        net = VNASNet.from_supernet(supernet, arch, deep_supervision=kwargs.get("deep_supervision", 0))
    else:
        net = VNASNet(architecture=arch, **kwargs)
    stats.update(retrain_init=init, search_fraction=search_fraction)
    left = max(budget_s - (time.perf_counter() - start), 1.0)
    return _retrain("vnas", net, plan, splits, left, work_dir, seed, max_steps, stats, recipe, network)


def random_architecture(seed: int) -> Architecture:
    """A uniformly random architecture of the V-NAS space (3^21 codes), from ``seed``."""
    return Architecture.random(seed)


def train_architecture(plan: Mapping[str, Any], splits: Mapping[str, Any], budget_s: float,
                       work_dir: str | os.PathLike, architecture: Any, name: str = "vnas_fixed", seed: int = 0,
                       max_steps: int | None = None, recipe: str = "paper",
                       network: Mapping[str, Any] | None = None) -> Any:
    """Retrain a given architecture (an ``Architecture``, arch.json path or preset) for the whole budget, as the
    searched one is retrained: the random and manual rows, and recipe experiments."""
    from vnas_monai.spaces.vnas import VNASNet

    arch = Architecture.resolve(architecture)
    torch.manual_seed(seed)
    net = VNASNet(architecture=arch, **_network_kwargs(plan, network))
    return _retrain(name, net, plan, splits, budget_s, work_dir, seed, max_steps,
                    {"architecture": " | ".join(arch.to_paper())}, recipe, network)


def train_vnas_random(plan: Mapping[str, Any], splits: Mapping[str, Any], budget_s: float,
                      work_dir: str | os.PathLike, seed: int = 0, max_steps: int | None = None, index: int = 1) -> Any:
    """Random architecture number ``index`` (seeded by it) trained for the whole budget."""
    return train_architecture(plan, splits, budget_s, work_dir, random_architecture(1000 + index),
                              f"vnas_random{index}", seed, max_steps)


def train_vnas_mix(plan: Mapping[str, Any], splits: Mapping[str, Any], budget_s: float,
                   work_dir: str | os.PathLike, seed: int = 0, max_steps: int | None = None) -> Any:
    """Benchmark method ``vnas_mix``: the supernet with alpha/beta frozen uniform, trained for the whole budget."""
    from vnas_monai.spaces.vnas import VNASSupernet

    torch.manual_seed(seed)
    net = VNASSupernet(mix=True, **_network_kwargs(plan, None))
    return _retrain("vnas_mix", net, plan, splits, budget_s, work_dir, seed, max_steps, {"architecture": "Mix"})


def manual_method(encoder_op: str, decoder_op: str) -> Any:
    """Benchmark method ``vnas_<enc>_<dec>``: one of Table 1's nine manual choices, retrained as the searched one."""

    def method(plan: Mapping[str, Any], splits: Mapping[str, Any], budget_s: float, work_dir: str | os.PathLike,
               seed: int = 0, max_steps: int | None = None) -> Any:
        return train_architecture(plan, splits, budget_s, work_dir, Architecture.manual(encoder_op, decoder_op),
                                  f"vnas_{encoder_op}_{decoder_op}", seed, max_steps)

    method.__name__ = method.__qualname__ = f"train_vnas_{encoder_op}_{decoder_op}"
    return method
