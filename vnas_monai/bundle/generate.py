"""The shipped bundles (NIH Pancreas-CT, MSD lung, MSD pancreas) from one source, ``bundles/vnas_nih/search.json``.

:func:`build_bundles` returns every generated config (the stages of :mod:`vnas_monai.bundle.configs`, with each
dataset's defaults), :func:`write_bundles` writes them (``tools/generate_bundles.py`` is its command line), and
``tests/bundles/test_generated_configs.py`` checks the committed files against it.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path
from typing import Any

from .configs import (
    PLANNED,
    check_source,
    evaluate_config,
    inference_config,
    load_source,
    planned,
    read_back,
    train_config,
)

__all__ = ["DATASETS", "build_bundles", "write_bundles"]

DATASETS = {
    "vnas_nih": dict(work_dir="runs/vnas_nih", arch_fallback="nih", class_names=["background", "pancreas"],
                     roi_size=[96, 96, 64], num_classes=2, intensity_clip=[-100, 240]),
    "vnas_msd_lung": dict(work_dir="runs/vnas_msd_lung", arch_fallback="msd_lung",
                          class_names=["background", "tumour"], roi_size=[64, 64, 64], num_classes=2,
                          intensity_clip=[-1024, 300]),
    "vnas_msd_pancreas": dict(work_dir="runs/vnas_msd_pancreas", arch_fallback="msd_pancreas",
                              class_names=["background", "pancreas", "tumour"], roi_size=[64, 64, 64], num_classes=3,
                              intensity_clip=[-100, 240]),
}
DESC = {
    "vnas_nih": "NIH Pancreas-CT",
    "vnas_msd_lung": "MSD Task06 Lung (tumour)",
    "vnas_msd_pancreas": "MSD Task07 Pancreas (pancreas + tumour)",
}


def apply(c: Any, name: str, stage: str) -> Any:
    d = DATASETS[name]
    for k, v in d.items():
        if k in c:
            c[k] = v
    for k, default in PLANNED.items():
        if k in c:
            value = d.get(k, default)
            c[k] = planned(k, value) if stage in ("search", "train") else value
    if stage == "train":  # the training run writes the class names into settings.json; a plan has them too
        c["class_names"] = planned("class_names", d["class_names"])
    c["_desc_"] = c["_desc_"].replace("NIH Pancreas-CT", DESC[name])
    if stage == "search":
        c["_desc_"] = (f"V-NAS architecture search (Zhu et al., 3DV 2019, Alg. 1) on {DESC[name]}; run id "
                       "'search' (or 'run', as every other stage).")
    elif name != "vnas_nih":
        c["_desc_"] = c["_desc_"].rstrip() + f" Defaults for {DESC[name]}."
    return c


def build_bundles(search: Any) -> dict[str, dict[str, Any]]:
    """Every generated config: ``{bundle name: {stage: config}}`` (the NIH search.json itself is the source)."""
    check_source(search)
    out: dict[str, dict[str, Any]] = {}
    for name in DATASETS:
        stages = {"train": train_config(search), "inference": inference_config(search),
                  "evaluate": evaluate_config(search)}
        if name != "vnas_nih":
            stages["search"] = copy.deepcopy(search)
        for stage, c in stages.items():
            if name == "vnas_nih" and stage != "search":
                c["_desc_"] = c["_desc_"].rstrip() + " Defaults for NIH Pancreas-CT."
            apply(c, name, stage)
            if stage in ("inference", "evaluate"):
                read_back(c)
        out[name] = stages
    return out


def write_bundles(root: str | os.PathLike) -> None:
    """Write every generated config under ``root`` (the ``bundles`` folder), and copy the dataset-independent files
    (logging, the torchrun overlays) from the NIH bundle to the others."""
    root = Path(root)
    for name, stages in build_bundles(load_source(root)).items():
        os.makedirs(root / name, exist_ok=True)
        if name != "vnas_nih":
            for fname in ("logging.conf", "multi_gpu_search.json", "multi_gpu_train.json"):
                shutil.copy(root / "vnas_nih" / fname, root / name / fname)
        for stage, c in stages.items():
            with open(root / name / f"{stage}.json", "w") as f:
                f.write(json.dumps(c, indent=4) + "\n")
