"""Data layer: datalists in the published dataset layouts, cross-validation folds and synthetic phantoms.

The MONAI transforms live in :mod:`vnas_monai.data.transforms` (imported on demand: importing MONAI transforms is slow).
"""

from __future__ import annotations

from .brain_phantom import BRAIN_PHANTOM_MODALITIES, make_brain_phantoms
from .brats import BRATS_MODALITIES, load_brats_datalist
from .datalist import check_pairs, detect_layout, load_datalist
from .folds import TRAIN_SPLITS, fold_datalists, make_folds, read_folds, split_train_val, training_cases, write_folds
from .phantoms import make_phantom_dataset, resolve_dataset_dir

__all__ = [
    "load_datalist",
    "detect_layout",
    "check_pairs",
    "make_folds",
    "write_folds",
    "read_folds",
    "split_train_val",
    "fold_datalists",
    "training_cases",
    "TRAIN_SPLITS",
    "make_phantom_dataset",
    "resolve_dataset_dir",
    "BRAIN_PHANTOM_MODALITIES",
    "make_brain_phantoms",
    "BRATS_MODALITIES",
    "load_brats_datalist",
    "LAYOUTS",
    "RegionLayout",
    "LabelToRegionsd",
    "RegionsToLabeld",
    "get_layout",
    "label_to_regions",
    "region_names",
    "regions_to_label",
    "BrainWiseNormalized",
    "brain_wise_normalize",
    "fit_brain_stats",
    "read_channels",
    "AutoFitInferer",
    "PATCHING",
    "autofit_inference",
    "autofit_starts",
    "patch_inferer",
    "axis_starts",
    "brain_box",
    "extract_patches",
    "stitch_patches",
]

#: names of the modules that import torch / MONAI transforms, loaded on first use (``import vnas_monai.data`` stays
#: light): name -> submodule
_LAZY = {
    **dict.fromkeys(("LAYOUTS", "RegionLayout", "LabelToRegionsd", "RegionsToLabeld", "get_layout",
                     "label_to_regions", "region_names", "regions_to_label"), "regions"),
    **dict.fromkeys(("BrainWiseNormalized", "brain_wise_normalize", "fit_brain_stats", "read_channels"), "brainnorm"),
    **dict.fromkeys(("AutoFitInferer", "PATCHING", "patch_inferer", "autofit_inference", "autofit_starts",
                     "axis_starts", "brain_box", "extract_patches",
                     "stitch_patches"), "autofit"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
