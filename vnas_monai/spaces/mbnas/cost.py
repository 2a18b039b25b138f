"""Parameters and MACs of an MB-NAS network at an input size (Bosma et al., SPIE 2022, Table 1: MMAC, #Params).

The network is built and run on PyTorch's ``meta`` device (no memory, no compute) and counted by
:func:`vnas_monai.networks.cost.count_macs` (every 2D or 3D convolution: output voxels x input channels per group x
kernel volume; transposed: input voxels x output channels per group x kernel volume). Norms, activations and pooling
are not counted, as in the usual MAC tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from vnas_monai.networks.cost import count_macs

from .network import EncodingSpec, build_network

__all__ = ["cost_report"]


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
    macs = count_macs(net, (1, in_channels, *roi_size))
    return {"architecture": net.encoding.summary(), "roi_size": list(roi_size), "init_channels": init_channels,
            "params": params, "macs": macs, "mmacs": macs / 1e6, "gmacs": macs / 1e9}
