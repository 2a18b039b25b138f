"""vnas_monai: V-NAS (Zhu et al., 3DV 2019) neural architecture search for volumetric segmentation, on MONAI."""

from .spaces.vnas.encoding import Architecture

__version__ = "0.1.0"
__all__ = ["Architecture", "__version__"]
