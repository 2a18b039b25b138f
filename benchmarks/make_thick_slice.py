#!/usr/bin/env python
"""Derive a thick-slice copy of an MSD dataset: every ``factor`` consecutive slices of the slice axis become one
(issue 14: a configuration where the 2D / 3D choice of V-NAS's cells may matter more than on near-isotropic data).

    python benchmarks/make_thick_slice.py --dataset_dir ../shared/data/msd_hippocampus \\
        --output_dir /tmp/hippocampus_thick3 --factor 3

What a thick-slice acquisition of the same anatomy would give:

- image: the mean of the ``factor`` thin slices (partial-volume averaging of a thick slice);
- label: the middle thin slice of each group (the structure as drawn on the thick slice's centre);
- affine: the slice axis' voxel size times ``factor``, the origin moved to the centre of the first group, so the
  thick volume overlays the thin one in world coordinates;
- trailing slices that do not fill a group are dropped.

The output is written to a sibling temporary folder and renamed into place when complete, so an interrupted run
leaves no partial dataset. It is for benchmarks: write it outside the repository (real data is never copied into the
project).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np


def thicken(image: np.ndarray, label: np.ndarray, affine: np.ndarray, factor: int, axis: int
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image (mean of each group), label (middle slice of each group) and affine of the thick-slice volume.

    Shapes: image and label (X, Y, Z) -> (X, Y, Z // factor) for ``axis`` 2 (any axis of a 3D array).
    """
    n = image.shape[axis] // factor
    if n < 1:
        raise ValueError(f"the slice axis has {image.shape[axis]} slices, fewer than one group of {factor}.")
    img = np.moveaxis(image, axis, -1)[..., : n * factor].astype(np.float32)
    img = img.reshape(*img.shape[:-1], n, factor).mean(-1)
    lab = np.moveaxis(label, axis, -1)[..., factor // 2: n * factor: factor]
    out = affine.copy()
    out[:3, 3] = affine[:3, 3] + affine[:3, axis] * (factor - 1) / 2.0
    out[:3, axis] = affine[:3, axis] * factor
    return np.moveaxis(img, -1, axis), np.moveaxis(lab, -1, axis), out


def main(argv: list[str] | None = None) -> Path:
    """Parse ``argv`` (default: the command line), write the thick-slice dataset, return its folder."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset_dir", required=True, help="MSD dataset folder with dataset.json")
    p.add_argument("--output_dir", required=True, help="new dataset folder (must not exist)")
    p.add_argument("--factor", type=int, default=3, help="thin slices per thick slice")
    p.add_argument("--axis", type=int, default=2, help="the slice axis of the arrays (0, 1 or 2)")
    args = p.parse_args(argv)
    src, dst = Path(args.dataset_dir), Path(args.output_dir)
    if args.factor < 2 or args.axis not in (0, 1, 2):
        raise SystemExit(f"--factor must be >= 2 and --axis 0, 1 or 2; got {args.factor}, {args.axis}.")
    if dst.exists():
        raise SystemExit(f"{dst} exists; choose a new --output_dir (nothing was written).")
    meta = json.loads((src / "dataset.json").read_text())
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", dir=dst.parent))
    try:
        for case in meta["training"]:
            for key in ("image", "label"):
                (tmp / case[key]).parent.mkdir(parents=True, exist_ok=True)
            img_nii, lab_nii = nib.load(src / case["image"]), nib.load(src / case["label"])
            img, lab, aff = thicken(np.asarray(img_nii.dataobj), np.asarray(lab_nii.dataobj), img_nii.affine,
                                    args.factor, args.axis)
            nib.save(nib.Nifti1Image(img.astype(np.float32), aff), tmp / case["image"])
            nib.save(nib.Nifti1Image(lab.astype(np.uint8), aff), tmp / case["label"])
        meta["description"] = f"{meta.get('description', '')} -- thick slices: {args.factor} thin slices each " \
                              f"(axis {args.axis}; image mean, label middle slice)"
        meta["test"] = []
        meta["numTest"] = 0
        (tmp / "dataset.json").write_text(json.dumps(meta, indent=1))
        os.replace(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"wrote {len(meta['training'])} thick-slice cases to {dst}")
    return dst


if __name__ == "__main__":
    main()
