"""The MB-NAS search space (Bosma et al., "Mixed-Block Neural Architecture Search for Medical Image Segmentation",
SPIE Medical Imaging 2022, §2.1): one package behind the protocol of :mod:`vnas_monai.spaces` (``get_space("mbnas")``).

- :mod:`.encoding`: ``MBNASEncoding``, per node channels (down / same / up), block, kernel and skip source; JSON,
  digest, variables (``channels.<l>``, ``block.<l>``, ``kernel.<l>``, ``skip.<l>``), neighbours, rows, layout;
- :mod:`.rule`: the one validity rule (``repair``, ``problems``);
- :mod:`.presets`: the U-Net encoding (the search's start) and the variable groups of Macro-, Micro- and Bilevel-NAS
  (``comparison_restrictions``);
- :mod:`.blocks`: the VGG, residual, dense and inception blocks (2D and 3D); :mod:`.network`: ``MBNASNet``,
  ``build_network``; :mod:`.figures`: the Fig. 2c drawing; :mod:`.cost`: parameters and MACs.

MB-NAS has no supernet: it is searched by :func:`vnas_monai.strategies.run_local_search`.
"""

from .encoding import (
    BLOCK_TYPES,
    CHANNEL_OPTIONS,
    KERNEL_SIZES,
    MAX_DOWNSAMPLINGS,
    NUM_NODES,
    MBNASEncoding,
    variable_names,
)
from .presets import cell_variables, comparison_restrictions, kernel_variables, topology_variables, unet_encoding
from .rule import NO_SKIP, levels_of, problems, repair

__all__ = [
    "BLOCK_TYPES",
    "CHANNEL_OPTIONS",
    "KERNEL_SIZES",
    "MAX_DOWNSAMPLINGS",
    "MBNASEncoding",
    "NO_SKIP",
    "NUM_NODES",
    "cell_variables",
    "comparison_restrictions",
    "kernel_variables",
    "levels_of",
    "problems",
    "repair",
    "topology_variables",
    "unet_encoding",
    "variable_names",
]
