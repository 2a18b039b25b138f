"""One precision setting for every stage: ``auto``, ``fp32``, ``bf16`` or ``fp16``, on CPU and GPU alike.

``auto`` picks, by device:

- **CPU with bf16 matrix hardware** (Intel AMX tiles or AVX-512 BF16, probed through PyTorch): bfloat16 autocast.
  oneDNN then runs the forward, backward-data and backward-weight convolutions in bf16 (on AMX, 3-10x the float32
  matrix-product rate); batch norm keeps float32 weights and statistics. No gradient scaler is needed.
- **CUDA with bf16 support** (Ampere and newer): bfloat16 autocast; older CUDA devices: float16 autocast with a
  ``GradScaler``.
- **anything else** (a CPU without bf16 matrix units, MPS, ...): float32. CPU autocast without bf16 hardware
  emulates bf16 and is slower than float32.

Parameters, architecture logits and optimizer state always stay float32 (autocast casts weights per call), so
checkpoints are float32 whatever the precision. The loss is computed in float32 (:func:`float_logits`).
MONAI's own ``amp`` flag of ``SupervisedTrainer``/``SupervisedEvaluator`` autocasts on CUDA only, hence the
engines of :mod:`vnas_monai.engine.trainers` and the search trainer use :class:`PrecisionPolicy` instead.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
from monai.utils import StrEnum

__all__ = ["Precision", "PrecisionPolicy", "cpu_bf16_matmul", "float_logits", "resolve_precision"]


class Precision(StrEnum):
    """The bundle key ``precision``: ``auto`` (see the module docstring), or one forced compute dtype."""

    AUTO = "auto"
    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"


_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def cpu_bf16_matmul() -> tuple[bool, str]:
    """Whether this CPU has bf16 matrix hardware that oneDNN uses, and what the probe found (for the log line)."""
    probe = getattr(torch, "cpu", None)
    amx = bool(getattr(probe, "_is_amx_tile_supported", lambda: False)())
    avx512_bf16 = bool(getattr(probe, "_is_avx512_bf16_supported", lambda: False)())
    mkldnn_bf16 = bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    if mkldnn_bf16 and amx:
        return True, "CPU has AMX bf16 tiles"
    if mkldnn_bf16 and avx512_bf16:
        return True, "CPU has AVX-512 BF16"
    return False, "CPU has no bf16 matrix hardware (no AMX, no AVX-512 BF16)"


@dataclass(frozen=True)
class PrecisionPolicy:
    """The resolved precision of one engine on one device.

    Attributes:
        name: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (never ``"auto"``).
        device_type: ``"cpu"``, ``"cuda"``, ...
        reason: why this precision (the start-of-run log line says it).
    """

    name: str
    device_type: str
    reason: str

    @property
    def dtype(self) -> torch.dtype:
        """The compute dtype of convolutions and matrix products."""
        return _DTYPES[self.name]

    @property
    def autocast_enabled(self) -> bool:
        return self.name != "fp32"

    @property
    def needs_scaler(self) -> bool:
        """float16 gradients underflow without loss scaling; bfloat16 has float32's exponent range and needs none."""
        return self.name == "fp16"

    def autocast(self) -> AbstractContextManager:
        """``torch.autocast`` of this policy (a disabled one for float32)."""
        return torch.autocast(self.device_type, dtype=self.dtype, enabled=self.autocast_enabled)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A ``GradScaler`` enabled only where the policy needs one (float16)."""
        return torch.amp.GradScaler(self.device_type, enabled=self.needs_scaler)

    def describe(self) -> str:
        return f"precision {self.name} on {self.device_type} ({self.reason})"


def resolve_precision(precision: str | Precision | PrecisionPolicy, device: str | torch.device) -> PrecisionPolicy:
    """Resolve a ``precision`` setting for ``device`` (see the module docstring for what ``auto`` picks).

    Raises:
        ValueError: an unknown setting (naming the key ``precision`` and the choices), ``bf16`` forced on a CUDA
            device without bf16 support, or ``fp16`` forced on a CPU.
    """
    if isinstance(precision, PrecisionPolicy):
        return precision
    device = torch.device(device)
    try:
        choice = str(Precision(str(precision).strip().lower()))
    except ValueError:
        raise ValueError(
            f"precision {precision!r} is not one of {[str(p) for p in Precision]} (bundle key 'precision')."
        ) from None
    if choice != "auto":
        if choice == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ValueError("precision 'bf16' was asked for, but this CUDA device has no bf16 support; use 'fp16'.")
        if choice == "fp16" and device.type == "cpu":
            # measured here: a V-NAS forward at init_filters 4, 32^3 took 26 s under CPU float16 autocast
            raise ValueError("precision 'fp16' is for CUDA devices: CPU float16 convolutions are emulated and about "
                             "500x slower; use 'bf16' (on CPUs with AMX / AVX-512 BF16) or 'fp32' (key 'precision').")
        return PrecisionPolicy(choice, device.type, "set by the precision key")
    if device.type == "cpu":
        has_bf16, why = cpu_bf16_matmul()
        return PrecisionPolicy("bf16" if has_bf16 else "fp32", "cpu", f"auto: {why}")
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return PrecisionPolicy("bf16", "cuda", "auto: CUDA device supports bf16")
        return PrecisionPolicy("fp16", "cuda", "auto: CUDA device without bf16, float16 with a gradient scaler")
    return PrecisionPolicy("fp32", device.type, f"auto: no mixed precision on {device.type}")


def float_logits(pred):
    """The network output in float32 for the loss (softmax and log of bf16 logits lose digits); a list or tuple
    (deep supervision) element-wise. Tensors already in float32 are returned as they are."""
    if isinstance(pred, (list, tuple)):
        return type(pred)(float_logits(p) for p in pred)
    if isinstance(pred, torch.Tensor) and pred.is_floating_point() and pred.dtype != torch.float32:
        return pred.float()
    return pred
