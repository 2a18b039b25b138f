"""Parameters and MACs of a V-NAS architecture, or of its supernet, at a patch size (``python -m vnas_monai cost``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn

from vnas_monai.networks.cost import count_macs

from .encoding import Architecture
from .network import VNASNet
from .supernet import VNASSupernet

__all__ = ["cost_report"]


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
