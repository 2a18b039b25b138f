"""Data layer: datalists in the published dataset layouts, cross-validation folds and synthetic phantoms.

The MONAI transforms live in :mod:`vnas_monai.data.transforms` (imported on demand: importing MONAI transforms is slow).
"""

from __future__ import annotations

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
]
