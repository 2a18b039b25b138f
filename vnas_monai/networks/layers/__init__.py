from .convs import ConvImpl, ConvNormAct, SliceConv3d, as_triple, same_padding

__all__ = ["ConvImpl", "ConvNormAct", "SliceConv3d", "as_triple", "same_padding"]
