"""The V-NAS search space (Zhu et al., 3DV 2019): one package, behind the protocol of :mod:`vnas_monai.spaces`.

- :mod:`.encoding`: ``Architecture``, the 16 encoder + 5 decoder codes in {0: 2D, 1: 3D, 2: P3D}, presets, JSON;
- :mod:`.candidates`: the candidate kernel tables;
- :mod:`.encoder`, :mod:`.decoder`: the cells (ResNet-50 bottlenecks, dense decoder blocks, PVP, head);
- :mod:`.backbone`, :mod:`.supernet`, :mod:`.network`: the shared backbone, the supernet (alpha / beta) and the
  discrete ``VNASNet``, which share module names so that weights move by ``state_dict``;
- :mod:`.figures`: the architecture figure; :mod:`.cost`: parameters and MACs.

Nothing outside this package knows the space's cell counts: generic code asks the encoding (``layout()``,
``options()``, ``rows()``) or the registry (``vnas_monai.spaces.get_space("vnas")``).
"""

from .backbone import DIVISOR, VNASBackbone
from .candidates import DECODER_CANDIDATES, ENCODER_CANDIDATES, get_candidate, op_name
from .decoder import PVP, DecoderCell, DenseBranch, DenseLayer, FinalHead, FullResolutionRefine, Transition
from .encoder import BottleneckBranch, EncoderCell, Stem
from .encoding import Architecture
from .network import VNASNet, build_vnasnet
from .supernet import SearchMode, VNASSupernet

__all__ = [
    "Architecture",
    "BottleneckBranch",
    "DECODER_CANDIDATES",
    "DIVISOR",
    "DecoderCell",
    "DenseBranch",
    "DenseLayer",
    "ENCODER_CANDIDATES",
    "EncoderCell",
    "FinalHead",
    "FullResolutionRefine",
    "PVP",
    "SearchMode",
    "Stem",
    "Transition",
    "VNASBackbone",
    "VNASNet",
    "VNASSupernet",
    "build_vnasnet",
    "get_candidate",
    "op_name",
]
