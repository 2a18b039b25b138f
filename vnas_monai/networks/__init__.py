"""Network parts every search space shares: layers (the conv-norm-act factory, pooling, memory formats), the mixed
operation of differentiable spaces, and the convolution cost counter. The spaces' own cells and networks live in
their packages (:mod:`vnas_monai.spaces`)."""

from .blocks import MixedOp
from .cost import conv_mac_counter, count_macs

__all__ = ["MixedOp", "conv_mac_counter", "count_macs"]
