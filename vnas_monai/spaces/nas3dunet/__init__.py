"""The NAS-3D-U-Net search space (Wang, "Neural Architecture Search for Gliomas Segmentation on Multimodal Magnetic
Resonance Imaging", BraTS 2019), behind the protocol of :mod:`vnas_monai.spaces` (registered as ``"nas3dunet"``).

- :mod:`.tables`: the DHM / UHM / NHM op tables (Table 1) and the cell wiring (Fig. 5), as names;
- :mod:`.ops`: the ops, built from the shared conv-norm-act factory;
- :mod:`.cells`: hybrid modules (the shared mixed op) and the downward / upward cells with 3 nodes;
- :mod:`.backbone`, :mod:`.supernet`, :mod:`.network`: the U of Fig. 3, the supernet (four alpha tables) and the
  discrete ``NAS3DUNet``, which share module names so that weights move by ``state_dict``;
- :mod:`.genotype`: the genotype (plain JSON, the paper's op names); :mod:`.figures`: the cells drawn as Fig. 6.
"""

from .backbone import NAS3DUNetBackbone, divisor
from .cells import Cell, HybridModule
from .genotype import PARTS, Genotype
from .loss import RegionDiceLoss
from .network import NAS3DUNet, build_nas3dunet
from .ops import DEFAULT_NORM, DepthwiseSeparableConv, NormAct, SEConv, make_op, norm_for
from .supernet import ARCH_PARAM_NAMES, NAS3DUNetSupernet
from .tables import DOWN_OPS, NORMAL_OPS, OP_TABLES, UP_OPS

__all__ = [
    "ARCH_PARAM_NAMES",
    "Cell",
    "DEFAULT_NORM",
    "DOWN_OPS",
    "DepthwiseSeparableConv",
    "Genotype",
    "HybridModule",
    "NAS3DUNet",
    "NAS3DUNetBackbone",
    "NAS3DUNetSupernet",
    "NORMAL_OPS",
    "NormAct",
    "OP_TABLES",
    "RegionDiceLoss",
    "PARTS",
    "SEConv",
    "UP_OPS",
    "build_nas3dunet",
    "divisor",
    "make_op",
    "norm_for",
]
