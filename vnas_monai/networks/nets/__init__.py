from .backbone import DIVISOR, VNASBackbone
from .supernet import SearchMode, VNASSupernet
from .vnasnet import VNASNet

__all__ = ["DIVISOR", "SearchMode", "VNASBackbone", "VNASNet", "VNASSupernet"]
