"""V-NAS network components: layers (conv factory), blocks (cells, candidates), nets (supernet, discrete net)."""

from .nets import DIVISOR, SearchMode, VNASBackbone, VNASNet, VNASSupernet

__all__ = ["DIVISOR", "SearchMode", "VNASBackbone", "VNASNet", "VNASSupernet"]
