from .convs import (
    AUTO_TABLE,
    ConvImpl,
    ConvMemoryFormat,
    ConvNormAct,
    SliceConv3d,
    as_triple,
    auto_form,
    kernel_kind,
    same_padding,
)
from .memory import (
    computing_layout,
    dense_grad,
    is_channels_last,
    set_bf16_training_layout,
    set_conv_memory_format,
    to_channels_last,
    to_contiguous_format,
)
from .pooling import MaxPool3d, block_max, max_pool3d

__all__ = [
    "AUTO_TABLE",
    "ConvImpl",
    "ConvMemoryFormat",
    "ConvNormAct",
    "MaxPool3d",
    "SliceConv3d",
    "as_triple",
    "auto_form",
    "block_max",
    "computing_layout",
    "dense_grad",
    "is_channels_last",
    "kernel_kind",
    "max_pool3d",
    "same_padding",
    "set_bf16_training_layout",
    "set_conv_memory_format",
    "to_channels_last",
    "to_contiguous_format",
]
