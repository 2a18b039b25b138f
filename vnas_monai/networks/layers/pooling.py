"""Max-pooling with non-overlapping windows, fast on the CPU and in the compute dtype under autocast.

Two things are wrong with ``F.max_pool3d`` for the windows V-NAS uses (kernel == stride: the encoder's (1, 1, 2) slice
pools, the stem's, and the in-plane pyramid pools of PVP):

- CPU autocast lists ``max_pool3d`` among the ops it runs in float32, so a bfloat16 activation would come out of
  every pool as float32, and everything after it would run in float32 until the next convolution.
- PyTorch's CPU kernel is slow for such windows: (1, 1, 2) on a (2, 16, 32, 32, 64) bfloat16 tensor takes 3.9 ms
  channels-last and 20.3 ms NCDHW (1 thread), against 0.45 / 4.4 ms for the maximum of the even and odd slices.

So a window of ``k`` along an axis is computed as the maximum of strided slices: halvings while ``k`` is even, then
one maximum over the ``k`` remaining slices. This is exact (the maximum of bfloat16 values is a bfloat16 value) and
keeps the input's dtype and memory layout. It runs where no gradient is recorded (inference, validation): under
autograd the backward of the maxima (strided scatters) measured 2-10x slower than ``max_pool3d``'s, so training
keeps ``F.max_pool3d``, as do other windows (padding, overlap, dilation) and TorchScript, all outside autocast.

Shapes: (N, C, H, W, D) -> (N, C, floor(H/kx), floor(W/ky), floor(D/kz)) for kernel == stride.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .convs import as_triple

__all__ = ["MaxPool3d", "block_max", "max_pool3d"]

#: the largest odd factor of a window that is reduced slice by slice; larger ones go to ``F.max_pool3d``
MAX_ODD_FACTOR = 8


@torch.jit.ignore
def autocast_active(x: torch.Tensor) -> bool:
    """Whether autocast is on for the device type of ``x`` (False for device types without autocast, e.g. meta)."""
    try:
        return torch.is_autocast_enabled(x.device.type)
    except RuntimeError:
        return False


def _odd_part(k: int) -> int:
    while k % 2 == 0:
        k //= 2
    return k


def _every(x: torch.Tensor, dim: int, start: int, step: int) -> torch.Tensor:
    index = [slice(None)] * x.dim()
    index[dim] = slice(start, None, step)
    return x[tuple(index)]


@torch.jit.ignore
def block_max(x: torch.Tensor, kernel_size: Sequence[int]) -> torch.Tensor:
    """The maximum over non-overlapping ``kernel_size`` windows of the spatial axes of ``x`` (module docstring):
    ``F.max_pool3d(x, kernel_size, kernel_size)`` for any window whose odd factors are at most
    :data:`MAX_ODD_FACTOR`."""
    for axis, k in enumerate(int(k) for k in kernel_size):
        dim = 2 + axis
        if k > 1:  # floor, as max_pool3d: trailing voxels that fill no window drop out
            x = x.narrow(dim, 0, (x.shape[dim] // k) * k)
        while k % 2 == 0:
            x = torch.maximum(_every(x, dim, 0, 2), _every(x, dim, 1, 2))
            k //= 2
        if k > 1:
            out = _every(x, dim, 0, k)
            for j in range(1, k):
                out = torch.maximum(out, _every(x, dim, j, k))
            x = out
    return x


def _blockwise(kernel_size: Sequence[int], stride: Sequence[int]) -> bool:
    """Whether :func:`block_max` computes this window (non-overlapping, small odd factors)."""
    return list(kernel_size) == list(stride) and all(_odd_part(int(k)) <= MAX_ODD_FACTOR for k in kernel_size)


def _no_grad(x: torch.Tensor) -> bool:
    return x.dim() == 5 and not (torch.is_grad_enabled() and x.requires_grad)


@torch.jit.ignore
def _pool_outside_autocast(x: torch.Tensor, kernel_size: list[int], stride: list[int]) -> torch.Tensor:
    with torch.autocast(x.device.type, enabled=False):
        return F.max_pool3d(x, kernel_size, stride)


def max_pool3d(x: torch.Tensor, kernel_size: list[int], stride: list[int]) -> torch.Tensor:
    """``F.max_pool3d(x, kernel_size, stride)`` in the dtype of ``x``, also under autocast (scriptable); windows with
    kernel == stride by :func:`block_max`.

    Shapes: (N, C, H, W, D) -> (N, C, floor(H/sx), floor(W/sy), floor(D/sz)) for kernel == stride.
    """
    if not torch.jit.is_scripting():
        if _no_grad(x) and _blockwise(kernel_size, stride):
            return block_max(x, kernel_size)
        if autocast_active(x):
            return _pool_outside_autocast(x, kernel_size, stride)
    return F.max_pool3d(x, kernel_size, stride)


class MaxPool3d(nn.MaxPool3d):
    """``nn.MaxPool3d`` (same arguments, no parameters) whose output keeps the input's dtype under autocast, computed
    by :func:`block_max` for non-overlapping windows.

    Shapes: as ``nn.MaxPool3d``.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # decided once: the search step runs every pool on each call
        k, s, p, d = (as_triple(v) for v in (self.kernel_size, self.stride, self.padding, self.dilation))
        self.block_window = list(k)
        self.blockwise = p == (0, 0, 0) and d == (1, 1, 1) and not self.ceil_mode and _blockwise(k, s)

    @torch.jit.unused
    def _eager(self, x: torch.Tensor) -> torch.Tensor:
        if self.blockwise and _no_grad(x):
            return block_max(x, self.block_window)
        with torch.autocast(x.device.type, enabled=False):  # max_pool3d would run in float32 under CPU autocast
            return super().forward(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            if not self.return_indices:
                return self._eager(x)
        return F.max_pool3d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)
