"""Parameters and MACs of an MB-NAS network at an input size (Bosma et al., SPIE 2022, Table 1: MMAC, #Params).

The network is built and run on PyTorch's ``meta`` device (no memory, no compute). 3D networks are counted by
:func:`vnas_monai.networks.cost.count_macs`; that counter hooks 3D convolutions only, so 2D networks are counted here
with the same rule for ``Conv2d`` / ``ConvTranspose2d`` (output voxels x input channels per group x kernel volume;
transposed: input voxels x output channels per group x kernel volume). Norms, activations and pooling are not
counted, as in the usual MAC tables.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn

from vnas_monai.networks.cost import count_macs

from .network import EncodingSpec, build_network

__all__ = ["cost_report", "network_macs"]


def network_macs(net: nn.Module, input_shape: Sequence[int]) -> int:
    """Convolution MACs of one forward pass of a 2D or 3D ``net`` for an input of ``input_shape`` (B, C, *spatial)."""
    if len(input_shape) == 5:
        return count_macs(net, input_shape)
    total = [0]

    def hook(mod: nn.Module, inp: tuple, out: torch.Tensor) -> None:
        k = math.prod(mod.kernel_size)
        if isinstance(mod, nn.ConvTranspose2d):
            total[0] += inp[0].numel() * mod.out_channels * k // mod.groups
        else:
            total[0] += out.numel() * (mod.in_channels // mod.groups) * k

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    try:
        with torch.no_grad():
            net(torch.empty(*input_shape, device=next(net.parameters()).device))
    finally:
        for h in handles:
            h.remove()
    return total[0]


def cost_report(encoding: EncodingSpec, roi_size: Sequence[int] = (128, 128), in_channels: int = 1,
                out_channels: int = 2, init_channels: int = 32, **kwargs: Any) -> dict[str, Any]:
    """Parameters and MACs (per sample) of ``encoding``'s network at ``roi_size`` (2 sizes: 2D, 3 sizes: 3D; the
    paper's input is 128 x 128).

    Returns:
        ``{"architecture": summary, "roi_size", "init_channels", "params", "macs", "mmacs", "gmacs"}``.
    """
    with torch.device("meta"):
        net = build_network(encoding, len(roi_size), in_channels, out_channels, init_channels, **kwargs)
    net.eval()
    params = sum(p.numel() for p in net.parameters())
    macs = network_macs(net, (1, in_channels, *roi_size))
    return {"architecture": net.encoding.summary(), "roi_size": list(roi_size), "init_channels": init_channels,
            "params": params, "macs": macs, "mmacs": macs / 1e6, "gmacs": macs / 1e9}
