"""Max-pooling that keeps the compute dtype under autocast.

CPU autocast lists ``max_pool3d`` among the ops it runs in float32, so a bfloat16 activation comes out of every pool
as float32 and everything after it (norms, activations, residual sums, concatenations) runs in float32 until the next
convolution casts it back. The maximum of bfloat16 values is itself a bfloat16 value, so pooling in the input's dtype
is exact: these layers step out of autocast for the pool alone. Outside autocast they are ``nn.MaxPool3d`` /
``F.max_pool3d``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["MaxPool3d", "max_pool3d"]


@torch.jit.ignore
def autocast_active(x: torch.Tensor) -> bool:
    """Whether autocast is on for the device type of ``x`` (False for device types without autocast, e.g. meta)."""
    try:
        return torch.is_autocast_enabled(x.device.type)
    except RuntimeError:
        return False


@torch.jit.ignore
def _pool_outside_autocast(x: torch.Tensor, kernel_size: list[int], stride: list[int]) -> torch.Tensor:
    with torch.autocast(x.device.type, enabled=False):
        return F.max_pool3d(x, kernel_size, stride)


def max_pool3d(x: torch.Tensor, kernel_size: list[int], stride: list[int]) -> torch.Tensor:
    """``F.max_pool3d(x, kernel_size, stride)`` in the dtype of ``x``, also under autocast (scriptable).

    Shapes: (N, C, H, W, D) -> (N, C, floor(H/sx), floor(W/sy), floor(D/sz)) for kernel == stride.
    """
    if not torch.jit.is_scripting():
        if autocast_active(x):
            return _pool_outside_autocast(x, kernel_size, stride)
    return F.max_pool3d(x, kernel_size, stride)


class MaxPool3d(nn.MaxPool3d):
    """``nn.MaxPool3d`` (same arguments, no parameters) whose output keeps the input's dtype under autocast.

    Shapes: as ``nn.MaxPool3d``.
    """

    @torch.jit.unused
    def _pool_outside_autocast(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return super().forward(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            if autocast_active(x):
                return self._pool_outside_autocast(x)
        return F.max_pool3d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)
