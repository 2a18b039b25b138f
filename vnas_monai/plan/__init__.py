"""Dataset-adaptive plans (nnU-Net style): a fingerprint with MONAI Auto3DSeg's ``DataAnalyzer`` and the rules that
turn it into spacing, patch size, normalisation, flips, batch size and foreground oversampling.

``python -m vnas_monai plan --dataset_dir D --output plan.json`` (:func:`vnas_monai.plan.command.plan`).
"""

from __future__ import annotations

from .command import compute_plan, plan, plan_for_work_dir, plan_value, resolve_plan
from .fingerprint import dataset_meta, fingerprint
from .planner import PLAN_VERSION, check_plan, describe, load_plan, make_plan, plan_overrides, write_plan
from .rules import fit_patch_size

__all__ = [
    "PLAN_VERSION",
    "check_plan",
    "compute_plan",
    "dataset_meta",
    "describe",
    "fingerprint",
    "fit_patch_size",
    "load_plan",
    "make_plan",
    "plan",
    "plan_for_work_dir",
    "plan_overrides",
    "plan_value",
    "resolve_plan",
    "write_plan",
]
