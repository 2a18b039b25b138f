"""The paper's baselines in the cross-validation harness (Zhu et al., 3DV 2019, Tables 1-4).

- Table 1: the nine manual choices, every encoder cell one candidate and every decoder block one candidate
  (3D/3D, 3D/2D, 3D/P3D, 2D/3D, ..., P3D/P3D).
- "Mix": the supernet with alpha and beta frozen equal, trained like the searched network.
- MONAI's ``UNet`` (the 3D U-Net row) and ``VNet``.

Each variant is retrained and evaluated on every fold with the dataset's ``train.json`` and ``evaluate.json``
(``vnas_monai.workflows.crossval``), on the same folds file, and the rows are printed in the paper's format.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vnas_monai.spaces.vnas.encoding import Architecture

from .crossval import crossval

__all__ = ["ablation", "VARIANTS", "variant_overrides"]

_LABEL = {"2d": "2D", "3d": "3D", "p3d": "P3D"}
MANUAL = [f"{e}/{d}" for e in ("3d", "2d", "p3d") for d in ("3d", "2d", "p3d")]  # Table 1's column order
VARIANTS = MANUAL + ["mix", "unet", "vnet"]


def _manual_arch(name: str) -> Architecture:
    enc, dec = name.split("/")
    return Architecture.manual(enc, dec)


def variant_overrides(name: str) -> dict[str, Any]:
    """Bundle overrides that make ``train.json``/``evaluate.json`` build the baseline ``name``."""
    if name == "mix":
        return {
            "network_def": {
                "_target_": "vnas_monai.spaces.vnas.VNASSupernet",
                "spatial_dims": 3,
                "in_channels": "@in_channels",
                "out_channels": "@num_classes",
                "init_filters": "@init_filters",
                "mix": True,
            }
        }
    if name == "unet":
        return {
            "network_def": {
                "_target_": "UNet",
                "spatial_dims": 3,
                "in_channels": "@in_channels",
                "out_channels": "@num_classes",
                "channels": "$[@init_filters * 2**i for i in range(5)]",
                "strides": [2, 2, 2, 2],
                "num_res_units": 2,
                "norm": "batch",
            }
        }
    if name == "vnet":
        return {
            "network_def": {
                "_target_": "VNet",
                "spatial_dims": 3,
                "in_channels": "@in_channels",
                "out_channels": "@num_classes",
            }
        }
    if name in MANUAL:
        return {}
    raise ValueError(f"unknown baseline {name!r}; choose from {VARIANTS}.")


def _row(name: str, summary: dict[str, Any]) -> str:
    if name in MANUAL:
        enc, dec = name.split("/")
        label, category = f"{_LABEL[enc]}/{_LABEL[dec]}", "manual"
    else:
        label, category = {"mix": ("Mix", "baseline"), "unet": ("UNet", "3D"), "vnet": ("VNet", "3D")}[name]
    cells = []
    for cls, per_metric in summary.get("classes", {}).items():
        metrics = per_metric["dice"]
        if metrics["mean"] is None:
            cells.append(f"{cls}: n/a")
            continue
        cells.append(
            f"{cls}: {100 * metrics['mean']:.2f} ± {100 * metrics['std']:.2f}% "
            f"(max {100 * metrics['max']:.2f}, min {100 * metrics['min']:.2f}, median {100 * metrics['median']:.2f})"
        )
    return f"| {label} | {category} | " + " | ".join(cells) + " |"


def ablation(
    bundle_dir: str = "bundles/vnas_nih",
    work_dir: str = "runs/vnas_nih",
    dataset_dir: str | None = None,
    num_folds: int = 4,
    variants: Sequence[str] = tuple(VARIANTS),
    folds: Sequence[int] | None = None,
    force: bool = False,
    **overrides: Any,
) -> dict[str, Any]:
    """Retrain and evaluate each baseline on every fold; print Table 1 and the baseline rows.

    Outputs go to ``<work_dir>/ablation/<variant>/`` (``/`` in a manual name becomes ``-``); the folds are those of
    ``<work_dir>/folds.json``, shared with the searched network's cross-validation.
    Returns ``{variant: summary}``.
    """
    from vnas_monai.data import resolve_dataset_dir

    work = Path(work_dir)
    # one dataset (the embedded phantoms when none is given) and one folds file for every variant
    phantom_keys = {k: overrides[k] for k in ("num_classes",) if k in overrides}
    if "phantom_cases" in overrides:
        phantom_keys["num_cases"] = overrides["phantom_cases"]
    dataset_dir = resolve_dataset_dir(dataset_dir, str(work), **phantom_keys)
    results: dict[str, Any] = {}
    for name in variants:
        extra = variant_overrides(name)
        arch = _manual_arch(name) if name in MANUAL else Architecture.preset("nih")  # arch unused by non-V-NAS nets
        vdir = work / "ablation" / name.replace("/", "-")
        vdir.mkdir(parents=True, exist_ok=True)
        arch_file = arch.save(vdir / "arch.json")
        results[name] = crossval(
            bundle_dir=bundle_dir,
            work_dir=str(vdir),
            dataset_dir=dataset_dir,
            num_folds=num_folds,
            folds=folds,
            stages=("train", "evaluate"),
            arch=str(arch_file),
            force=force,
            datalist_file=str(work / "folds.json"),
            **extra,
            **overrides,
        )
    lines = ["| method | category | Dice per class |", "|---|---|---|"]
    lines += [_row(name, summary) for name, summary in results.items()]
    table = "\n".join(lines)
    (work / "ablation" / "table.md").write_text(table + "\n")
    (work / "ablation" / "results.json").write_text(json.dumps(results, indent=1))
    print(table)
    return results
