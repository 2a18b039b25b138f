"""V-NAS search engine (Zhu et al., 3DV 2019, Alg. 1): trainer, handlers, plots and schedule helpers."""

from __future__ import annotations

from .architect import Architect, unwrap_network
from .checkpoints import AtomicCheckpointSaver, ResumeCheckpointLoader, checkpoint_candidates, latest_checkpoint
from .compiled import InferenceCompiler
from .determinism import SeededDataset, SeededSampler, item_seed, restart_data_each_epoch, restart_data_pass
from .handlers import ArchitectureLogger, search_losses
from .host_memory import keep_freed_memory
from .losses import DiceCELoss
from .penalties import ArchEntropyPenalty, arch_entropy
from .plots import plot_probability_history
from .precision import Precision, PrecisionPolicy, cpu_bf16_matmul, float_logits, resolve_precision
from .schedules import PolyLR, TimeBudget, epoch_length_of, epochs_for_iterations, num_iterations
from .search import (
    ARCH_LOSS,
    CyclicLoader,
    SearchEvents,
    VNASSearchTrainer,
    cycle_loader,
    select_device,
)
from .stop_rule import GenotypeStopRule
from .trainers import PrecisionInferer, PrecisionTrainer, unpack_batch

__all__ = [
    "ARCH_LOSS",
    "ArchEntropyPenalty",
    "Architect",
    "ArchitectureLogger",
    "AtomicCheckpointSaver",
    "CyclicLoader",
    "DiceCELoss",
    "GenotypeStopRule",
    "InferenceCompiler",
    "PolyLR",
    "Precision",
    "PrecisionInferer",
    "PrecisionPolicy",
    "PrecisionTrainer",
    "ResumeCheckpointLoader",
    "arch_entropy",
    "SearchEvents",
    "SeededDataset",
    "SeededSampler",
    "TimeBudget",
    "VNASSearchTrainer",
    "checkpoint_candidates",
    "cpu_bf16_matmul",
    "cycle_loader",
    "epoch_length_of",
    "epochs_for_iterations",
    "float_logits",
    "item_seed",
    "keep_freed_memory",
    "latest_checkpoint",
    "num_iterations",
    "plot_probability_history",
    "resolve_precision",
    "restart_data_each_epoch",
    "restart_data_pass",
    "search_losses",
    "select_device",
    "unpack_batch",
    "unwrap_network",
]
