"""Reproducible, resumable and rank-independent data randomness for the V-NAS search.

A search must give the same architecture when it is run twice with the same seed, when it is killed and resumed
(even with ``SIGKILL``, from the last epoch checkpoint) and, up to floating-point summation order, when the same total
batch is spread over several processes. Capturing every random state (torch, numpy, python, each MONAI transform's
``R``, the sampler, the workers') in the checkpoint is fragile: worker processes and prefetch queues cannot be saved.
Instead every random draw of the data pipeline is made a pure function of ``(seed, stream, epoch, index)``:

* :class:`SeededSampler` is a ``DistributedSampler`` (one replica when no process group is initialised) whose order
  depends only on ``seed + epoch``; it yields ``(epoch, index)`` pairs instead of bare indices.
* :class:`SeededDataset` wraps a dataset (e.g. MONAI ``CacheDataset``): before loading item ``index`` of ``epoch`` it
  re-seeds the random transforms with :func:`item_seed`, so the crop/flip of a case does not depend on which process
  or worker loads it, nor on what was loaded before.

``MONAI``'s ``Workflow`` calls ``set_epoch(engine.state.epoch)`` on a ``DistributedSampler`` at every epoch, and
:class:`vnas_monai.engine.VNASSearchTrainer` starts a fresh pass over ``S_train`` and ``S_val`` at every epoch, so
an epoch replayed after a resume sees exactly the batches it saw the first time. The network has no random layer,
so with the model, optimisers, schedule and counters restored from the checkpoint the trajectory is the same.
A plain ignite trainer (MONAI's ``SupervisedTrainer`` of ``train.json``) whose ``epoch_length`` is shorter than its
loader carries the loader's iterator over into the next epoch, which a resumed run cannot replay;
:func:`restart_data_each_epoch` gives it the search engine's rule: every epoch starts a fresh pass.
"""

from __future__ import annotations

from collections.abc import Sized
from typing import Any

import ignite.distributed as idist
import numpy as np
from monai.data.utils import set_rnd
from torch.utils.data import Dataset, DistributedSampler

__all__ = ["item_seed", "SeededSampler", "SeededDataset", "restart_data_pass", "restart_data_each_epoch"]


def item_seed(seed: int, stream: int, epoch: int, index: int) -> int:
    """A 32-bit seed that depends only on its arguments (numpy ``SeedSequence`` hashing, stable across platforms)."""
    entropy = [int(seed) % 2**32, int(stream) % 2**32, int(epoch) % 2**32, int(index) % 2**32]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def _world() -> tuple[int, int]:
    return idist.get_world_size(), idist.get_rank()


class SeededSampler(DistributedSampler):
    """``DistributedSampler`` yielding ``(epoch, index)``; defaults to one replica outside ``torch.distributed``.

    The permutation is ``torch.randperm(len(dataset), generator=manual_seed(seed + epoch))`` (as in
    ``DistributedSampler``), and replica ``r`` takes every ``num_replicas``-th index from position ``r``: with two
    processes and a per-process batch of 1, the two ranks together load exactly the items that one process loads
    with a batch of 2. Pair it with :class:`SeededDataset`, which accepts the ``(epoch, index)`` pairs.

    Args:
        dataset: the dataset to sample (only its length is used).
        num_replicas, rank: default to the initialised process group, else 1 and 0.
        shuffle, seed, drop_last: as ``DistributedSampler``.
    """

    def __init__(
        self,
        dataset: Sized,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        world, this_rank = _world()
        num_replicas = world if num_replicas is None else int(num_replicas)
        rank = this_rank if rank is None else int(rank)
        if len(dataset) == 0:
            raise ValueError("SeededSampler: the dataset is empty (no case in this split).")
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=int(seed),
                         drop_last=drop_last)

    def __iter__(self):  # type: ignore[override]
        epoch = int(self.epoch)
        return iter([(epoch, int(i)) for i in super().__iter__()])


class SeededDataset(Dataset):
    """Dataset wrapper that re-seeds the random transforms of ``dataset`` per item (see :func:`item_seed`).

    ``dataset[(epoch, index)]`` seeds the random transforms (``dataset.transform`` if it has one, else every
    randomizable attribute of ``dataset``) with ``item_seed(seed, stream, epoch, index)`` and returns
    ``dataset[index]``; a plain ``int`` index is taken as epoch 0. Give the S_train and S_val loaders different
    ``stream`` values so that their items draw independent crops.

    Args:
        dataset: a map-style dataset, typically a MONAI ``CacheDataset`` whose random transforms run on access.
        seed: the run's seed.
        stream: distinguishes datasets that share one seed.
    """

    def __init__(self, dataset: Any, seed: int = 0, stream: int = 0) -> None:
        self.dataset = dataset
        self.seed = int(seed)
        self.stream = int(stream)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, tuple):
            epoch, i = index
        else:
            epoch, i = 0, index
        target = getattr(self.dataset, "transform", None)
        set_rnd(self.dataset if target is None else target, item_seed(self.seed, self.stream, epoch, i))
        return self.dataset[int(i)]


def restart_data_pass(engine: Any) -> None:
    """``EPOCH_STARTED`` handler: make the epoch that starts a fresh pass over the engine's data loader.

    With ``epoch_length`` shorter than the loader, ignite continues the previous epoch's iterator, so the batches of
    epoch ``n`` depend on how many were drawn before, which a run resumed from a checkpoint does not know. Dropping the
    iterator lets ignite build a new one right after ``EPOCH_STARTED`` (after MONAI's ``set_epoch`` on the sampler),
    through its own set-up, so epoch ``n`` is the first ``epoch_length`` batches of pass ``n`` in an interrupted and
    an uninterrupted run alike.
    """
    if engine.state.dataloader is not None:
        engine._dataloader_iter = None


def restart_data_each_epoch(engine: Any) -> Any:
    """Attach :func:`restart_data_pass` to ``engine`` (e.g. MONAI's ``SupervisedTrainer`` of ``train.json``)."""
    from ignite.engine import Events

    engine.add_event_handler(Events.EPOCH_STARTED, restart_data_pass)
    return engine
