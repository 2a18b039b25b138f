"""The V-NAS search loop: first-order DARTS over 2D/3D/P3D candidates as a MONAI/ignite trainer.

Zhu et al., "V-NAS: Neural Architecture Search for Volumetric Medical Image Segmentation", 3DV 2019, Alg. 1:
every iteration (1) updates the network weights ``w`` on a batch of ``S_train`` with SGD, then (2) updates the
architecture parameters ``alpha`` (encoder, 16 x 3) and ``beta`` (decoder, 5 x 3) on a batch of ``S_val`` with Adam;
step (2) starts only after a warm-up of weight-only epochs (20 in the paper). The first-order approximation treats
``w`` as fixed while differentiating the ``S_val`` loss with respect to ``alpha, beta``.

:class:`VNASSearchTrainer` is a :class:`monai.engines.SupervisedTrainer`, hence an ignite ``Engine`` that a bundle
instantiates with ``_target_`` and drives with MONAI handlers (``CheckpointSaver``, ``LrScheduleHandler``, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch
import torch.distributed as dist
from ignite.engine import EventEnum, Events
from monai.engines import SupervisedTrainer
from monai.engines.trainer import Trainer
from monai.engines.utils import IterationEvents, default_metric_cmp_fn, default_prepare_batch
from torch.optim import Optimizer

from vnas_monai.engine.architect import Architect, unwrap_network
from vnas_monai.engine.determinism import restart_data_pass
from vnas_monai.engine.host_memory import keep_freed_memory
from vnas_monai.engine.precision import PrecisionPolicy, resolve_precision
from vnas_monai.engine.trainers import unpack_batch, weight_step

__all__ = [
    "ARCH_LOSS",
    "SearchEvents",
    "CyclicLoader",
    "cycle_loader",
    "select_device",
    "unwrap_network",
    "VNASSearchTrainer",
]

#: Key of the architecture (S_val) loss in ``engine.state.output``, next to MONAI's image/label/pred/loss.
ARCH_LOSS = "arch_loss"


class SearchEvents(EventEnum):
    """Extra event fired by :class:`VNASSearchTrainer` after each architecture update (Alg. 1, step 2)."""

    ARCH_COMPLETED = "arch_completed"


def select_device(device: str | torch.device | None = "auto") -> torch.device:
    """Resolve a device spec from a config: ``"auto"``/``None`` -> CUDA if available, else CPU.

    Args:
        device: ``"auto"``, ``None``, ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or a ``torch.device``.

    Raises:
        ValueError: an unparsable spec, or CUDA requested on a machine without (enough) CUDA devices.
    """
    if device is None or (isinstance(device, str) and device.strip().lower() == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device.strip() if isinstance(device, str) else device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device {device!r} is not valid; use 'auto', 'cpu', 'cuda' or 'cuda:N' ({e}).") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available here; use 'auto' or 'cpu'.")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist.")
    return dev


class CyclicLoader(Iterator):
    """Endless iterator over a data loader: a new pass starts (with a fresh iterator) whenever one is exhausted.

    Alg. 1 draws one ``S_val`` batch per iteration, independently of how many batches ``S_train`` has, so the
    architecture loader is cycled rather than zipped with the training loader. ``set_epoch(n)`` is called on a
    ``DistributedSampler`` (or any sampler with ``set_epoch``) before pass ``n`` so that each pass reshuffles.
    The live iterator (worker processes, prefetch queues) is never pickled; it is re-created on first use.

    Args:
        loader: any re-iterable (``torch.utils.data.DataLoader``, MONAI ``DataLoader``, list of batches).
        epoch: number of passes already started (restored from the trainer state when a search resumes).
    """

    def __init__(self, loader: Iterable, epoch: int = 0) -> None:
        self.loader = loader
        self.epoch = int(epoch)
        self._iterator: Iterator | None = None

    def _start_pass(self) -> None:
        sampler = getattr(self.loader, "sampler", None)
        if callable(getattr(sampler, "set_epoch", None)):
            sampler.set_epoch(self.epoch)
        self._iterator = iter(self.loader)
        self.epoch += 1

    def __next__(self) -> Any:
        # two tries: the current pass may be exhausted; an empty loader is exhausted straight after a new pass
        for _ in range(2):
            if self._iterator is None:
                self._start_pass()
            try:
                return next(self._iterator)  # type: ignore[arg-type]
            except StopIteration:
                self._iterator = None
        raise ValueError("the architecture data loader (S_val) yielded no batch: it is empty.")

    def reset(self) -> None:
        """Drop the live iterator; the next batch starts a new pass."""
        self._iterator = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_iterator"] = None
        return state


def cycle_loader(loader: Iterable, epoch: int = 0) -> CyclicLoader:
    """Wrap ``loader`` into a :class:`CyclicLoader` (endless, reshuffled per pass)."""
    return CyclicLoader(loader, epoch)


def _check_optimizers(network: torch.nn.Module, optimizer: Optimizer, arch_optimizer: Optimizer | None) -> None:
    arch_ids = {id(p) for p in network.arch_parameters()}
    for group in optimizer.param_groups:
        if any(id(p) in arch_ids for p in group["params"]):
            raise ValueError(
                "the weight optimizer holds architecture parameters (alpha/beta): build it over "
                "network.weight_parameters(), not network.parameters(), so that SGD on S_train never moves alpha/beta "
                "(V-NAS Alg. 1 updates them only with the architecture optimizer on S_val)."
            )
    if arch_optimizer is not None:
        for group in arch_optimizer.param_groups:
            if any(id(p) not in arch_ids for p in group["params"]):
                raise ValueError(
                    "the architecture optimizer holds parameters that are not alpha/beta: build it over "
                    "network.arch_parameters() only (V-NAS Alg. 1 updates weights only on S_train)."
                )


class VNASSearchTrainer(SupervisedTrainer):
    """V-NAS architecture search (paper Alg. 1, first-order DARTS) as a MONAI ``SupervisedTrainer``.

    Each iteration: (1) one weight step of ``optimizer`` on the ``S_train`` batch that the engine is iterating;
    (2) once ``engine.state.epoch > arch_warmup_epochs`` and unless the network is the "Mix" baseline
    (``network.mix``), one step of ``arch_optimizer`` on the next ``S_val`` batch from ``arch_data_loader``
    (cycled independently). The two optimizers are checked to hold disjoint parameters, the architecture gradient
    of step (1) is discarded, and step (2) computes gradients for alpha/beta only (``torch.autograd.grad``, which
    also skips the weight-gradient kernels), so neither step ever moves the other's parameters.

    ``engine.state.output`` holds MONAI's ``image``/``label``/``pred``/``loss`` of the weight step plus
    ``arch_loss`` (``None`` when no architecture step ran). ``engine.state.arch_iteration`` counts architecture
    updates and, with ``engine.state.arch_epoch`` (passes over ``S_val``), is part of :meth:`state_dict`, so a
    ``CheckpointSaver`` holding the trainer resumes the counters; the ``S_val`` iterator itself restarts at a new pass.

    Precision uses one code path on every device (:mod:`vnas_monai.engine.precision`): both forward passes run
    under the policy's ``torch.autocast`` (bf16 on CPUs with AMX / AVX-512 BF16 and on bf16 GPUs with ``"auto"``),
    both losses on float32 logits, and a ``torch.amp.GradScaler`` per optimizer is enabled for float16 only.
    alpha/beta, the weights and the optimizer states stay float32.

    Args:
        device: ``"auto"``, ``"cpu"``, ``"cuda:N"`` or a ``torch.device`` (see :func:`select_device`).
        max_epochs: epochs over ``train_data_loader``.
        train_data_loader: ``S_train`` loader; drives the epochs.
        network: the supernet (``vnas_monai.spaces.vnas.VNASSupernet``), exposing ``arch_parameters()`` and ``mix``;
            may be wrapped in ``DistributedDataParallel``.
        optimizer: weight optimizer over ``network.weight_parameters()`` (paper: SGD, lr 0.05, momentum 0.9,
            weight decay 5e-4, poly decay).
        loss_function: segmentation loss (paper: cross-entropy).
        arch_data_loader: ``S_val`` loader, cycled; required unless ``network.mix``.
        arch_optimizer: optimizer over ``network.arch_parameters()`` (paper: Adam, lr 3e-4, weight decay 1e-3);
            required unless ``network.mix``.
        arch_warmup_epochs: weight-only epochs before architecture updates start (paper: 20).
        arch_loss_function: loss for the architecture step; defaults to ``loss_function``.
        arch_penalty: optional ``penalty(supernet, engine) -> scalar`` added to the architecture loss, e.g.
            :class:`vnas_monai.engine.ArchEntropyPenalty` (a decided search within a small budget).
        precision: ``"auto"``, ``"fp32"``, ``"bf16"``, ``"fp16"`` (bundle key ``precision``) or a resolved policy.
        Other arguments: as :class:`monai.engines.SupervisedTrainer`.

    Raises:
        ValueError: the network has no architecture parameters, an optimizer holds the other's parameters,
            the architecture loader/optimizer is missing for a non-Mix search, or ``arch_warmup_epochs < 0``.
    """

    def __init__(
        self,
        device: str | torch.device | None,
        max_epochs: int,
        train_data_loader: Iterable,
        network: torch.nn.Module,
        optimizer: Optimizer,
        loss_function: Callable,
        arch_data_loader: Iterable | None = None,
        arch_optimizer: Optimizer | None = None,
        arch_warmup_epochs: int = 0,
        arch_loss_function: Callable | None = None,
        arch_penalty: Callable | None = None,
        epoch_length: int | None = None,
        non_blocking: bool = False,
        prepare_batch: Callable = default_prepare_batch,
        iteration_update: Callable | None = None,
        inferer: Any = None,
        postprocessing: Callable | None = None,
        key_train_metric: dict | None = None,
        additional_metrics: dict | None = None,
        metric_cmp_fn: Callable = default_metric_cmp_fn,
        train_handlers: Sequence | None = None,
        precision: str | PrecisionPolicy = "auto",
        event_names: list | None = None,
        event_to_attr: dict | None = None,
        decollate: bool = True,
        optim_set_to_none: bool = False,
        to_kwargs: dict | None = None,
    ) -> None:
        device = select_device(device)
        net = unwrap_network(network)
        if not callable(getattr(net, "arch_parameters", None)):
            raise ValueError(f"{type(net).__name__} has no arch_parameters(): the search needs a V-NAS supernet.")
        if int(arch_warmup_epochs) < 0:
            raise ValueError(f"arch_warmup_epochs must be >= 0, got {arch_warmup_epochs}.")
        _check_optimizers(net, optimizer, arch_optimizer)
        if not bool(getattr(net, "mix", False)) and (arch_data_loader is None or arch_optimizer is None):
            raise ValueError(
                "a V-NAS search needs arch_data_loader (S_val) and arch_optimizer (Adam over arch_parameters()); "
                "only the 'Mix' baseline (network.mix=True, alpha/beta frozen) runs without them."
            )
        policy = resolve_precision(precision, device)
        events = list(event_names or []) + [SearchEvents]
        super().__init__(
            device=device,
            max_epochs=max_epochs,
            train_data_loader=train_data_loader,
            network=network,
            optimizer=optimizer,
            loss_function=loss_function,
            epoch_length=epoch_length,
            non_blocking=non_blocking,
            prepare_batch=prepare_batch,
            iteration_update=iteration_update,
            inferer=inferer,
            postprocessing=postprocessing,
            key_train_metric=key_train_metric,
            additional_metrics=additional_metrics,
            metric_cmp_fn=metric_cmp_fn,
            train_handlers=train_handlers,
            amp=False,
            event_names=events,
            event_to_attr=event_to_attr,
            decollate=decollate,
            optim_set_to_none=optim_set_to_none,
            to_kwargs=to_kwargs,
        )
        self.arch_data_loader = arch_data_loader
        self.arch_optimizer = arch_optimizer
        self.arch_warmup_epochs = int(arch_warmup_epochs)
        self.arch_loss_function = loss_function if arch_loss_function is None else arch_loss_function
        self.precision = policy
        # the scaler of the weight step; the architecture step has its own (the two losses are scaled independently)
        self.scaler = policy.grad_scaler()
        self.architect = (
            Architect(arch_optimizer, self.arch_loss_function, policy, arch_penalty) if arch_optimizer is not None
            else None
        )
        self._arch_cycle = CyclicLoader(arch_data_loader) if arch_data_loader is not None else None
        if device.type == "cpu":
            self.logger.info(keep_freed_memory())
        self.state.arch_iteration = 0
        self.state.arch_epoch = 0
        self._state_dict_user_keys.extend(["arch_iteration", "arch_epoch"])
        self._start_logged = False
        self._ranks_logged = False
        # logged at the first epoch of each run, i.e. after a CheckpointLoader (STARTED) has restored the counters
        self.add_event_handler(Events.STARTED, self._reset_start_log)
        self.add_event_handler(Events.EPOCH_STARTED, self._restart_passes)
        self.add_event_handler(Events.EPOCH_STARTED, self._log_start)
        self.add_event_handler(Events.EPOCH_COMPLETED, self._check_ranks_agree)

    # ----------------------------------------------------------------- properties
    @property
    def supernet(self) -> torch.nn.Module:
        """The unwrapped supernet (``arch_parameters()``, ``derive()``, ``mix``)."""
        return unwrap_network(self.network)

    @property
    def mix(self) -> bool:
        """True for the paper's "Mix" baseline: alpha/beta stay frozen and equal, no architecture step."""
        return bool(getattr(self.supernet, "mix", False))

    @property
    def arch_scaler(self) -> torch.amp.GradScaler | None:
        """The architecture step's gradient scaler (the :class:`Architect`'s; enabled for float16 only)."""
        return None if self.architect is None else self.architect.scaler

    @arch_scaler.setter
    def arch_scaler(self, scaler: torch.amp.GradScaler) -> None:
        if self.architect is None:
            raise ValueError("this search has no architecture optimizer, hence no architecture scaler.")
        self.architect.scaler = scaler

    def arch_step_enabled(self, epoch: int | None = None) -> bool:
        """Whether Alg. 1 step (2) runs in ``epoch`` (default: the current one): after warm-up, not in Mix mode."""
        epoch = self.state.epoch if epoch is None else epoch
        return self.arch_optimizer is not None and not self.mix and epoch > self.arch_warmup_epochs

    # ----------------------------------------------------------------- engine plumbing
    def run(self) -> None:  # type: ignore[override]
        # skip Trainer.run: it would replace our device-generic GradScalers by the deprecated cuda-only one
        super(Trainer, self).run()

    def load_state_dict(self, state_dict: Any) -> None:
        """Restore epoch/iteration and the architecture counters (0 when resuming from a plain trainer's state)."""
        state_dict = dict(state_dict)
        state_dict.setdefault("arch_iteration", 0)
        state_dict.setdefault("arch_epoch", 0)
        super().load_state_dict(state_dict)
        if self._arch_cycle is not None:
            self._arch_cycle.reset()

    def _reset_start_log(self, engine: VNASSearchTrainer) -> None:
        self._start_logged = False

    def _restart_passes(self, engine: VNASSearchTrainer) -> None:
        """Start fresh passes over S_train (:func:`restart_data_pass`) and S_val at every epoch, so that an epoch is
        a function of its number and a resumed search sees the batches an uninterrupted one sees."""
        restart_data_pass(engine)
        if self._arch_cycle is not None:
            self._arch_cycle.reset()

    def _check_ranks_agree(self, engine: VNASSearchTrainer) -> None:
        """In a multi-process search, check that alpha/beta are bit-identical on every rank (cheap: 63 numbers)."""
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
            return
        params = list(self.supernet.arch_parameters())
        if not params:
            return
        flat = torch.cat([p.detach().reshape(-1).float() for p in params])
        low, high = flat.clone(), flat.clone()
        dist.all_reduce(low, op=dist.ReduceOp.MIN)
        dist.all_reduce(high, op=dist.ReduceOp.MAX)
        spread = float((high - low).abs().max())
        if spread > 0:
            raise RuntimeError(
                f"the architecture parameters (alpha/beta) differ across the {dist.get_world_size()} ranks by up to "
                f"{spread:g} after epoch {engine.state.epoch}: their gradients must be all-reduced on every rank."
            )
        if not self._ranks_logged:
            self._ranks_logged = True
            self.logger.info(f"alpha/beta identical on all {dist.get_world_size()} ranks (epoch {engine.state.epoch}).")

    def _log_start(self, engine: VNASSearchTrainer) -> None:
        if self._start_logged:
            return
        self._start_logged = True
        mode = "Mix baseline (alpha/beta frozen)" if self.mix else f"after epoch {self.arch_warmup_epochs}"
        self.logger.info(
            f"V-NAS search on {self.state.device}: epoch {self.state.epoch}/{self.state.max_epochs}, "
            f"{self.state.arch_iteration} architecture updates done, "
            f"architecture updates: {mode}, {self.precision.describe()}."
        )
        if not self.mix and self.arch_warmup_epochs >= self.state.max_epochs:
            self.logger.warning(
                f"arch_warmup_epochs={self.arch_warmup_epochs} >= max_epochs={self.state.max_epochs}: "
                "the architecture will never be updated."
            )

    # ----------------------------------------------------------------- Alg. 1
    def _iteration(self, engine: VNASSearchTrainer, batchdata: Any) -> dict:  # type: ignore[override]
        """One iteration of Alg. 1: weight step on the ``S_train`` batch, then architecture step on ``S_val``."""
        # (1) w <- w - lr * grad_w L_train(w, alpha, beta); the S_train gradient of alpha/beta is a by-product of
        # backward that first-order DARTS never uses
        weight_step(engine, batchdata, output={ARCH_LOSS: None}, discard_grads=engine.supernet.arch_parameters())

        # (2) alpha, beta <- Adam step on grad_{alpha,beta} L_val(w, alpha, beta), w fixed (first order)
        if engine.arch_step_enabled():
            engine.state.output[ARCH_LOSS] = engine._arch_step()
            engine.fire_event(SearchEvents.ARCH_COMPLETED)
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output

    def _arch_step(self) -> torch.Tensor:
        """Alg. 1 step (2) on the next ``S_val`` batch (:class:`Architect`); returns the detached architecture loss."""
        cycle = self._arch_cycle
        if cycle is None or self.architect is None:
            raise RuntimeError("architecture step requested without an arch_data_loader and arch_optimizer.")
        cycle.epoch = self.state.arch_epoch  # follows the (resumable) engine state
        batchdata = next(cycle)
        self.state.arch_epoch = cycle.epoch
        batch = self.prepare_batch(batchdata, self.state.device, self.non_blocking, **self.to_kwargs)
        inputs, targets, args, kwargs = unpack_batch(batch)
        loss = self.architect.step(
            self.network, inputs, targets, lambda x: self.inferer(x, self.network, *args, **kwargs), engine=self
        )
        self.state.arch_iteration += 1
        if self.state.arch_iteration == 1:
            self.logger.info(f"first architecture update (Alg. 1) at epoch {self.state.epoch}.")
        return loss
