"""MONAI engines with one precision code path on every device (:mod:`vnas_monai.engine.precision`).

:class:`PrecisionTrainer` is MONAI's ``SupervisedTrainer`` (same arguments, events and handlers, referenced by
``_target_`` in the bundles) whose forward pass runs under the autocast of a
:class:`~vnas_monai.engine.precision.PrecisionPolicy` on CPU and GPU alike: MONAI's own ``amp`` flag autocasts on
CUDA only. The loss is computed in float32. :class:`PrecisionInferer` does the same for any MONAI inferer, so that
evaluators and MONAI Label, which call ``inferer(inputs, network)``, hand float32 predictions to post-processing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import torch
from monai.engines import SupervisedTrainer
from monai.engines.trainer import Trainer
from monai.engines.utils import IterationEvents
from monai.inferers import Inferer
from monai.utils.enums import CommonKeys as Keys

from vnas_monai.engine.compiled import InferenceCompiler
from vnas_monai.engine.host_memory import keep_freed_memory
from vnas_monai.engine.precision import PrecisionPolicy, float_logits, resolve_precision

__all__ = ["PrecisionInferer", "PrecisionTrainer", "unpack_batch", "weight_step"]


def unpack_batch(batch: Any) -> tuple[Any, Any, tuple, dict]:
    """MONAI's ``prepare_batch`` returns (inputs, targets) or (inputs, targets, args, kwargs): always the four."""
    if len(batch) == 2:
        return batch[0], batch[1], (), {}
    return batch[0], batch[1], tuple(batch[2]), dict(batch[3])


def _policy(precision: str | PrecisionPolicy, device: Any, kwargs: dict) -> PrecisionPolicy:
    if kwargs.pop("amp", False):
        raise ValueError("use the 'precision' key ('auto', 'fp32', 'bf16', 'fp16') instead of MONAI's CUDA-only 'amp'.")
    return resolve_precision(precision, device)


def weight_step(engine: Any, batchdata: Any, output: dict | None = None, discard_grads: Iterable = ()) -> None:
    """One supervised weight step of a MONAI trainer under ``engine.precision``, firing MONAI's iteration events.

    The batch is prepared, the forward pass runs under autocast, the loss on float32 logits, backward through
    ``engine.scaler``, then ``engine.optimizer`` steps. ``engine.state.output`` holds MONAI's image/label/pred/loss
    (plus ``output``); ``discard_grads`` are parameters whose gradient of this loss is dropped before the step (the
    search's alpha/beta). ``MODEL_COMPLETED`` is left to the caller.
    """
    if batchdata is None:
        raise ValueError("Must provide batch data for current iteration.")
    batch = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking, **engine.to_kwargs)
    inputs, targets, args, kwargs = unpack_batch(batch)
    engine.state.output = {Keys.IMAGE: inputs, Keys.LABEL: targets, **(output or {})}
    engine.network.train()
    engine.optimizer.zero_grad(set_to_none=engine.optim_set_to_none)
    with engine.precision.autocast():
        pred = engine.inferer(inputs, engine.network, *args, **kwargs)
    logits = float_logits(pred)  # cast once: the loss and the handlers both see float32
    engine.state.output[Keys.PRED] = logits
    engine.fire_event(IterationEvents.FORWARD_COMPLETED)
    loss = engine.loss_function(logits, targets).mean()
    engine.state.output[Keys.LOSS] = loss
    engine.fire_event(IterationEvents.LOSS_COMPLETED)
    engine.scaler.scale(loss).backward()
    engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
    for p in discard_grads:
        p.grad = None
    engine.scaler.step(engine.optimizer)
    engine.scaler.update()
    engine.state.output[Keys.PRED] = logits.detach()
    engine.state.output[Keys.LOSS] = loss.detach()


class PrecisionTrainer(SupervisedTrainer):
    """``SupervisedTrainer`` whose forward and loss run under ``precision`` on any device.

    Args:
        precision: ``"auto"``, ``"fp32"``, ``"bf16"``, ``"fp16"`` (bundle key ``precision``) or a resolved policy.
        *args, **kwargs: as ``monai.engines.SupervisedTrainer`` (``amp`` is refused: ``precision`` replaces it).

    Each iteration: forward under autocast, loss on float32 logits, backward (through a ``GradScaler`` for fp16
    only), optimizer step. Gradient accumulation is not supported (``accumulation_steps`` must stay 1). On the CPU
    the process keeps freed tensor memory for the next step (:func:`~vnas_monai.engine.keep_freed_memory`, logged).
    """

    def __init__(self, *args: Any, precision: str | PrecisionPolicy = "auto", **kwargs: Any) -> None:
        device = kwargs.get("device", args[0] if args else "cpu")
        self.precision = _policy(precision, device, kwargs)
        if int(kwargs.get("accumulation_steps", 1)) != 1:
            raise ValueError("PrecisionTrainer does not accumulate gradients: accumulation_steps must be 1.")
        super().__init__(*args, amp=False, **kwargs)
        self.scaler = self.precision.grad_scaler()
        self.logger.info(f"training with {self.precision.describe()}.")
        if torch.device(self.state.device).type == "cpu":
            self.logger.info(keep_freed_memory())

    def run(self) -> None:  # type: ignore[override]
        # skip Trainer.run: with amp it would replace the device-generic GradScaler by a CUDA-only one
        super(Trainer, self).run()

    def _iteration(self, engine: PrecisionTrainer, batchdata: Any) -> dict:  # type: ignore[override]
        weight_step(engine, batchdata)
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output


class PrecisionInferer(Inferer):
    """A MONAI inferer (e.g. ``SlidingWindowInferer``) run under ``precision``, returning float32 predictions.

    Used as the ``inferer`` of every evaluation, inference and exported MONAI Label bundle, so that
    ``SupervisedEvaluator`` (whose ``amp`` flag is CUDA-only) and MONAI Label's bundle inference task, which both
    call ``inferer(inputs, network)``, infer in bf16 on AMX CPUs and on GPUs alike. The policy is resolved for the
    device of each input.

    Args:
        inferer: the wrapped inferer.
        precision: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"`` (bundle key ``precision``).
        compile: run the network compiled with frozen weights (:class:`~vnas_monai.engine.compiled.InferenceCompiler`;
            bundle key ``compile``, off by default): bf16 sliding-window inference 1.5-1.7x faster on the AMX CPU,
            after a first call that compiles (30-60 s). For inference of fixed weights; under gradients it
            runs eagerly.

    Shapes: as the wrapped inferer; the output is float32.
    """

    def __init__(self, inferer: Inferer, precision: str = "auto", compile: bool = False) -> None:
        super().__init__()
        self.inferer = inferer
        self.precision = str(precision)
        resolve_precision(self.precision, "cpu")  # refuse an unknown setting at construction
        if not isinstance(compile, bool):
            raise TypeError(f"compile must be true or false, got {compile!r}.")
        self.compiler = InferenceCompiler() if compile else None
        self._policies: dict[str, PrecisionPolicy] = {}
        self.logger = logging.getLogger(__name__)

    def __getattr__(self, name: str) -> Any:
        # the wrapped inferer's settings (roi_size, overlap, ...) read through, as callers of a plain inferer expect
        inferer = self.__dict__.get("inferer")
        if inferer is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(inferer, name)

    def policy(self, device: torch.device) -> PrecisionPolicy:
        """The resolved policy for ``device`` (logged once per device type)."""
        if device.type not in self._policies:
            self._policies[device.type] = resolve_precision(self.precision, device)
            self.logger.info(f"inference with {self._policies[device.type].describe()}.")
        return self._policies[device.type]

    def __call__(self, inputs: torch.Tensor, network: Callable, *args: Any, **kwargs: Any) -> Any:
        if self.compiler is not None:
            network = self.compiler(network)
        with self.policy(inputs.device).autocast():
            out = self.inferer(inputs, network, *args, **kwargs)
        return float_logits(out)
