"""Cost model: parameters and multiply-accumulates (MACs) of any V-NAS architecture at a given patch size.

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

from vnas_monai.arch import Architecture

__all__ = ["conv_mac_counter", "count_macs", "cost_report", "format_cost"]


@contextmanager
def conv_mac_counter(net: nn.Module) -> Iterator[list[int]]:
    """Count the convolution MACs of the forward passes of ``net`` run inside the ``with`` block.

    Hooks every ``Conv3d`` and ``ConvTranspose3d`` (any subclass); the yielded one-item list holds the running total.
    """
    total = [0]

    def hook(mod: nn.Module, inp: tuple, out: torch.Tensor) -> None:
        k = math.prod(mod.kernel_size)
        if isinstance(mod, nn.ConvTranspose3d):
            total[0] += inp[0].numel() * mod.out_channels * k // mod.groups
        else:
            total[0] += out.numel() * (mod.in_channels // mod.groups) * k

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d))]
    try:
        yield total
    finally:
        for h in handles:
            h.remove()


def count_macs(net: nn.Module, input_shape: Sequence[int]) -> int:
    """MACs of one forward pass of ``net`` (on the meta device) for an input of ``input_shape`` (N, C, H, W, D).

    Counts convolutions and transposed convolutions, which dominate; norms, activations, pooling and
    interpolation are ignored (as in the usual MAC tables).
    """
    with conv_mac_counter(net) as total, torch.no_grad():
        net(torch.empty(*input_shape, device="meta"))
    return total[0]


def cost_report(
    architecture: Architecture | str | None = "nih",
    roi_size: Sequence[int] = (96, 96, 64),
    in_channels: int = 1,
    out_channels: int = 2,
    init_filters: int = 64,
    **kwargs: Any,
) -> dict[str, Any]:
    """Parameters and MACs (per sample) of a discrete architecture, or of the supernet when ``architecture`` is None.

    Returns:
        ``{"architecture": paper notation or "supernet", "roi_size", "params", "macs", "mmacs", "gmacs"}``.
    """
    from vnas_monai.networks import VNASNet, VNASSupernet

    with torch.device("meta"):
        if architecture is None:
            net: nn.Module = VNASSupernet(3, in_channels, out_channels, init_filters, **kwargs)
            name = "supernet"
        else:
            arch = Architecture.resolve(architecture)
            net = VNASNet(3, in_channels, out_channels, arch, init_filters, **kwargs)
            name = " | ".join(arch.to_paper())
    net.eval()
    params = sum(p.numel() for n, p in net.named_parameters() if n not in ("alpha", "beta"))
    macs = count_macs(net, (1, in_channels, *roi_size))
    return {
        "architecture": name,
        "roi_size": list(roi_size),
        "init_filters": init_filters,
        "params": params,
        "macs": macs,
        "mmacs": macs / 1e6,
        "gmacs": macs / 1e9,
    }


def format_cost(report: dict[str, Any]) -> str:
    return (
        f"{report['architecture']}: {report['params'] / 1e6:.2f} M params, {report['gmacs']:.2f} GMACs "
        f"per {'x'.join(str(s) for s in report['roi_size'])} patch (init_filters={report['init_filters']})"
    )
