"""Memory layout of V-NAS networks: NCDHW or ``torch.channels_last_3d`` (N, H, W, D, C in memory).

Every ``SliceConv3d`` computes in the layout its ``memory_format`` says (a ``ConvMemoryFormat``); a channels-last
convolution returns a channels-last output, so the norms, activations, poolings, concatenations and mixing sums after
it stay channels-last and the whole network runs in that layout from its first convolution on. ``VNASBackbone`` sets
the layout of all its convolutions from its ``memory_format`` argument (default ``"auto"``: channels-last on CPU,
where it was measured faster, see ``vnas_monai.networks.layers.convs.AUTO_TABLE``). The helpers below change it
afterwards, for any module tree (V-NAS networks or others, e.g. a MONAI ``UNet`` in a benchmark).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn as nn

from .convs import ConvMemoryFormat, SliceConv3d

__all__ = ["set_conv_memory_format", "set_bf16_training_layout", "to_channels_last", "to_contiguous_format",
           "is_channels_last", "computing_layout", "dense_grad"]


def set_conv_memory_format(model: nn.Module, memory_format: str) -> nn.Module:
    """Set the ``ConvMemoryFormat`` of every ``SliceConv3d`` in ``model`` (in place; returns ``model``).

    ``state_dict`` keys and values are untouched: the layout is a runtime choice, not a parameter.
    """
    fmt = str(ConvMemoryFormat(memory_format))
    for m in model.modules():
        if isinstance(m, SliceConv3d):
            m.memory_format = fmt
    return model


def set_bf16_training_layout(model: nn.Module, channels_last: bool) -> nn.Module:
    """Whether the ``"auto"`` layout of every ``SliceConv3d`` in ``model`` computes channels-last under CPU bf16
    training too (it does in float32 and in inference). In place; returns ``model``.

    Channels-last pays in bf16 training for wide networks only. ``benchmarks/bench_layout.py``, V-NAS network /
    supernet weight step, batch 2, 2 threads, channels-last against NCDHW: ``init_filters`` 64 at 96x96x64, 2.01 /
    4.47 s against 2.80 / 6.77 s; 32 at 96x96x64, 0.88 / 2.23 against 1.12 / 2.61; 64 at 64^3, 0.93 against 1.35;
    but 16 at 64^3, 0.31 / 0.76 against 0.31 / 0.74, and the mixed search iteration 1.32 against 1.20 s
    (``benchmarks/results/bf16_layer_precision_2026-12-07/``).
    """
    for m in model.modules():
        if isinstance(m, SliceConv3d):
            m.bf16_training_channels_last = bool(channels_last)
    return model


def to_channels_last(model: nn.Module) -> nn.Module:
    """Run ``model`` channels-last: its ``SliceConv3d`` compute channels-last on every device, and its 5D parameters
    (all convolution weights, ``nn.Conv3d`` and ``nn.ConvTranspose3d`` included) are stored channels-last, so that
    oneDNN/cuDNN keep the activations channels-last also through plain ``nn.Conv3d`` layers. In place; returns
    ``model``. For a model without ``SliceConv3d`` (e.g. MONAI's ``UNet``) also pass channels-last inputs:
    ``x.contiguous(memory_format=torch.channels_last_3d)``.
    """
    set_conv_memory_format(model, ConvMemoryFormat.CHANNELS_LAST)
    return model.to(memory_format=torch.channels_last_3d)


def to_contiguous_format(model: nn.Module) -> nn.Module:
    """Run ``model`` in NCDHW: the inverse of :func:`to_channels_last` (the naive layout). In place; returns it."""
    set_conv_memory_format(model, ConvMemoryFormat.PRESERVE)
    return model.to(memory_format=torch.contiguous_format)


def is_channels_last(x: torch.Tensor) -> bool:
    """True for a 5D tensor laid out channels-last (and not also NCDHW-contiguous, as 1-channel tensors are)."""
    return x.dim() == 5 and x.is_contiguous(memory_format=torch.channels_last_3d) and not x.is_contiguous()


@contextmanager
def computing_layout(model: nn.Module, channels_last: bool) -> Iterator[nn.Module]:
    """Inside: ``model`` computes channels-last (:func:`to_channels_last`: parameters *and* the layout of every
    ``SliceConv3d``) or NCDHW parameters with its convolutions' own layout. On exit its parameters are NCDHW again and
    each ``SliceConv3d`` has its own ``memory_format`` back.

    Why both: channels-last parameters with convolutions that compute NCDHW (a V-NAS network's ``"auto"`` under
    bf16 autocast) give channels-last gradients for NCDHW activations, and every ReLU / batch-norm backward then
    runs on mismatched layouts (a V-NAS training step at 32x64x32, batch 8, bf16, 1 thread: 0.65 s mixed, 0.62 s
    NCDHW, 0.52 s channels-last throughout; ``benchmarks/bench_layout.py``).
    """
    saved = {m: m.memory_format for m in model.modules() if isinstance(m, SliceConv3d)}
    try:
        yield to_channels_last(model) if channels_last else model.to(memory_format=torch.contiguous_format)
    finally:
        for m, fmt in saved.items():
            m.memory_format = fmt
        model.to(memory_format=torch.contiguous_format)


class _DenseGrad(torch.autograd.Function):
    """Identity whose backward returns the gradient dense in the input's layout."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.channels_last = is_channels_last(x)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return grad.contiguous(memory_format=torch.channels_last_3d if ctx.channels_last else torch.contiguous_format)


def dense_grad(x: torch.Tensor) -> torch.Tensor:
    """``x``, with its gradient made dense in ``x``'s layout on the way back.

    For a tensor that goes into ``torch.cat``: the gradient it gets back is a strided slice of the concatenation's,
    and an activation's backward on a strided gradient is slow on CPU (ReLU backward, bf16, (8, 8, 32, 64, 32)
    channels-last: 22.7 ms against 5.6 ms dense, 1 thread); one copy costs less.
    """
    return _DenseGrad.apply(x) if torch.is_grad_enabled() and x.requires_grad else x
