"""A tiny MRI-like MSD dataset written with nibabel: two classes one after the other along axis 1 (like hippocampus
Anterior / Posterior), non-cubic volumes, shared by the plan, baseline and benchmark tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def make_dataset(root: Path, num_cases: int = 6, shape=(20, 28, 12), spacing=(1.0, 1.0, 1.0), modality="MRI",
                 names=("background", "front", "back"), seed: int = 0) -> Path:
    """Write ``num_cases`` cases; class 1 is a box at low axis-1 indices, class 2 right behind it."""
    import nibabel as nib

    rng = np.random.default_rng(seed)
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    training = []
    affine = np.diag([*spacing, 1.0])
    for i in range(num_cases):
        label = np.zeros(shape, np.uint8)
        x0, z0 = rng.integers(3, 6), rng.integers(2, 4)
        y0 = rng.integers(3, 6)
        label[x0:x0 + 8, y0:y0 + 8, z0:z0 + 6] = 1
        label[x0:x0 + 8, y0 + 8:y0 + 16, z0:z0 + 6] = len(names) - 1
        image = (100 + 40 * label + rng.normal(0, 5, shape)).astype(np.float32)
        name = f"case_{i:03d}.nii.gz"
        nib.save(nib.Nifti1Image(image, affine), str(root / "imagesTr" / name))
        nib.save(nib.Nifti1Image(label, affine), str(root / "labelsTr" / name))
        training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
    meta = {"name": "synthetic", "modality": {"0": modality}, "labels": {str(k): v for k, v in enumerate(names)},
            "numTraining": num_cases, "training": training}
    (root / "dataset.json").write_text(json.dumps(meta))
    return root
