from .candidates import DECODER_CANDIDATES, ENCODER_CANDIDATES, get_candidate, op_name
from .decoder import PVP, DecoderCell, DenseBranch, DenseLayer, FinalHead, FullResolutionRefine, Transition
from .encoder import BottleneckBranch, EncoderCell, Stem
from .mixed import MixedOp

__all__ = [
    "BottleneckBranch",
    "DECODER_CANDIDATES",
    "DecoderCell",
    "DenseBranch",
    "DenseLayer",
    "ENCODER_CANDIDATES",
    "EncoderCell",
    "FinalHead",
    "FullResolutionRefine",
    "MixedOp",
    "PVP",
    "Stem",
    "Transition",
    "get_candidate",
    "op_name",
]
