"""Cost model: convolution multiply-accumulates (MACs) of any network, and the one-line cost summary.

The MB-NAS paper (and users) compare segmentation networks by #params and MMACs. Counting runs the network once on
PyTorch's ``meta`` device, which propagates shapes without allocating or computing, so a full-width network at the
paper's 96x96x64 patch is costed in well under a second.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn as nn

__all__ = ["conv_mac_counter", "count_macs", "format_cost"]


@contextmanager
def conv_mac_counter(net: nn.Module) -> Iterator[list[int]]:
    """Count the convolution MACs of the forward passes of ``net`` run inside the ``with`` block.

    Hooks every convolution and transposed convolution, 1D to 3D (``nn.modules.conv._ConvNd``, any subclass: the 2D
    networks of MB-NAS too); the yielded one-item list holds the running total.
    """
    total = [0]

    def hook(mod: nn.Module, inp: tuple, out: torch.Tensor) -> None:
        k = math.prod(mod.kernel_size)
        if isinstance(mod, nn.modules.conv._ConvTransposeNd):
            total[0] += inp[0].numel() * mod.out_channels * k // mod.groups
        else:
            total[0] += out.numel() * (mod.in_channels // mod.groups) * k

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, nn.modules.conv._ConvNd)]
    try:
        yield total
    finally:
        for h in handles:
            h.remove()


def count_macs(net: nn.Module, input_shape: Sequence[int]) -> int:
    """MACs of one forward pass of ``net`` (on the meta device) for an input of ``input_shape`` (N, C, *spatial).

    Counts convolutions and transposed convolutions, which dominate; norms, activations, pooling and
    interpolation are ignored (as in the usual MAC tables).
    """
    with conv_mac_counter(net) as total, torch.no_grad():
        net(torch.empty(*input_shape, device="meta"))
    return total[0]


def format_cost(report: dict[str, Any]) -> str:
    return (
        f"{report['architecture']}: {report['params'] / 1e6:.2f} M params, {report['gmacs']:.2f} GMACs "
        f"per {'x'.join(str(s) for s in report['roi_size'])} patch (init_filters={report['init_filters']})"
    )
