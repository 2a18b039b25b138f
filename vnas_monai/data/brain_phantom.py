"""Synthetic multimodal brain-tumour MRI phantoms in the BraTS or the MSD Task01 layout (smoke tests of the
NAS-3D-U-Net pipeline: Wang, BraTS 2019, §3.1).

Each case has four modalities (t1, t1ce, t2, flair) that are exactly 0 outside an ellipsoid, slightly deformed
brain mask (skull-stripped MRI) and positive inside it, and a tumour of nested regions: edema ⊃ tumour core ⊃
enhancing tumour (the core's rim enhances, its centre is necrotic). Per-modality contrasts, relative to the tissue
(smooth low-frequency variation plus noise): edema bright in t2 / flair, necrosis dark in t1 / t1ce and bright in
t2, the enhancing rim bright in t1ce. Labels:

- ``layout="brats"``: ``<root>/<case>/<case>_{t1,t1ce,t2,flair,seg}.nii.gz``, seg 1 necrosis / non-enhancing core,
  2 edema, 4 enhancing (:func:`vnas_monai.data.brats.load_brats_datalist` reads it);
- ``layout="msd"``: ``imagesTr/<case>.nii.gz`` 4D ``(x, y, z, 4)`` in MSD Task01's modality order (FLAIR, T1w,
  t1gd, T2w), ``labelsTr/<case>.nii.gz`` with 1 edema, 2 non-enhancing tumour, 3 enhancing tumour, and a
  ``dataset.json`` naming them (:func:`vnas_monai.data.load_datalist` reads it).

The files have a non-identity affine (flipped x and y, an origin offset). The dataset is written to a hidden
temporary sibling folder and renamed into place at the end, so an interrupted run never leaves a partial dataset
that looks complete; ``phantom.json`` records the parameters, and a complete dataset of the same parameters is reused.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vnas_monai.io import replace_dir

from .phantoms import _ellipsoid_d2, _grid, _smooth_field

__all__ = ["BRAIN_PHANTOM_MODALITIES", "make_brain_phantoms"]

BRAIN_PHANTOM_MODALITIES: tuple[str, ...] = ("t1", "t1ce", "t2", "flair")
GENERATOR_VERSION = 1
_MARKER = "phantom.json"
#: MSD Task01's channel order (its dataset.json "modality") as indices into BRAIN_PHANTOM_MODALITIES
_MSD_ORDER = ((3, "FLAIR"), (0, "T1w"), (1, "t1gd"), (2, "T2w"))
#: BraTS label -> MSD label (edema 2 -> 1, necrosis / non-enhancing 1 -> 2, enhancing 4 -> 3)
_BRATS_TO_MSD = {0: 0, 1: 2, 2: 1, 4: 3}
_BASE = np.array([500.0, 550.0, 400.0, 350.0], dtype=np.float32)  # tissue intensity per modality
#: per tissue class (BraTS label), the intensity factor per modality (t1, t1ce, t2, flair)
_CONTRAST = {2: (0.85, 0.9, 1.6, 1.7), 1: (0.6, 0.65, 1.9, 0.9), 4: (0.9, 1.9, 1.3, 1.3)}


def _params(out_dir: Any, n_cases: Any, shape: Any, layout: Any, seed: Any) -> dict[str, Any]:
    if isinstance(n_cases, bool) or not isinstance(n_cases, int) or n_cases < 1:
        raise ValueError(f"make_brain_phantoms: n_cases must be an int >= 1, got {n_cases!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"make_brain_phantoms: seed must be an int >= 0, got {seed!r}.")
    if (not isinstance(shape, (list, tuple)) or len(shape) != 3
            or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 16 for s in shape)):
        raise ValueError(f"make_brain_phantoms: shape must be 3 ints >= 16 (x, y, z voxels), got {shape!r}.")
    if layout not in ("brats", "msd"):
        raise ValueError(f"make_brain_phantoms: layout must be 'brats' or 'msd', got {layout!r} (for {out_dir}).")
    return {"generator": "vnas_monai.data.brain_phantom", "version": GENERATOR_VERSION, "n_cases": n_cases,
            "shape": [int(s) for s in shape], "layout": layout, "seed": seed}


def _make_case(rng: np.random.Generator, shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """One phantom: images ``(4, *shape)`` float32 (t1, t1ce, t2, flair), label ``shape`` uint8 in BraTS labels."""
    u = _grid(shape)
    radii = np.array([rng.uniform(0.8, 0.9), rng.uniform(0.82, 0.92), rng.uniform(0.75, 0.88)], dtype=np.float32)
    d2 = _ellipsoid_d2(u, np.zeros(3, dtype=np.float32), radii, rng.uniform(-0.2, 0.2))
    brain = d2 + 0.08 * _smooth_field(rng, u, terms=3) <= 1.0

    centre = (rng.uniform(-0.3, 0.3, size=3) * radii).astype(np.float32)
    r_edema = rng.uniform(0.28, 0.38, size=3).astype(np.float32)
    d2_edema = _ellipsoid_d2(u, centre, r_edema, rng.uniform(0, np.pi)) + 0.15 * _smooth_field(rng, u, terms=2)
    edema = brain & (d2_edema <= 1.0)
    shift = (rng.uniform(-0.1, 0.1, size=3) * r_edema).astype(np.float32)
    r_core = (r_edema * rng.uniform(0.45, 0.6)).astype(np.float32)
    d2_core = _ellipsoid_d2(u, centre + shift, r_core, rng.uniform(0, np.pi))
    core = edema & (d2_core <= 1.0)
    enhancing = core & (d2_core > rng.uniform(0.3, 0.5))

    label = np.zeros(tuple(shape), dtype=np.uint8)
    label[edema], label[core], label[enhancing] = 2, 1, 4

    tissue = 1.0 + 0.15 * _smooth_field(rng, u)
    images = np.zeros((4, *shape), dtype=np.float32)
    for m in range(4):
        factor = np.ones(tuple(shape), dtype=np.float32)
        for value, contrast in _CONTRAST.items():
            factor[label == value] = contrast[m]
        img = _BASE[m] * tissue * factor + rng.normal(0.0, 0.03 * _BASE[m], size=tuple(shape)).astype(np.float32)
        images[m] = np.where(brain, np.maximum(img, 1.0), 0.0)
    return images, label


def _affine(shape: Sequence[int]) -> np.ndarray:
    affine = np.diag([-1.0, -1.0, 1.0, 1.0])
    affine[:3, 3] = [0.5 * (shape[0] - 1), 0.5 * (shape[1] - 1) + 7.0, -0.5 * (shape[2] - 1) + 3.0]
    return affine


def _save(data: np.ndarray, affine: np.ndarray, path: Path) -> None:
    import nibabel as nib

    nii = nib.Nifti1Image(data, affine)
    nii.header.set_xyzt_units("mm", "sec")
    nii.set_qform(affine, code=1)
    nii.set_sform(affine, code=1)
    nib.save(nii, path)


def _write(tmp: Path, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    shape, affine = params["shape"], _affine(params["shape"])
    cases = []
    if params["layout"] == "msd":
        (tmp / "imagesTr").mkdir()
        (tmp / "labelsTr").mkdir()
    for i in range(params["n_cases"]):
        images, label = _make_case(np.random.default_rng([params["seed"], i]), shape)
        if params["layout"] == "brats":
            case = f"BraTSPhantom_{i:05d}"
            (tmp / case).mkdir()
            for m, name in enumerate(BRAIN_PHANTOM_MODALITIES):
                _save(images[m], affine, tmp / case / f"{case}_{name}.nii.gz")
            _save(label, affine, tmp / case / f"{case}_seg.nii.gz")
            cases.append({"case": case, "files": [f"{case}/{case}_{k}.nii.gz"
                                                  for k in (*BRAIN_PHANTOM_MODALITIES, "seg")]})
        else:
            case = f"BRATS_{i + 1:03d}"
            stacked = np.stack([images[m] for m, _ in _MSD_ORDER], axis=-1)
            msd_label = np.zeros_like(label)
            for brats, msd in _BRATS_TO_MSD.items():
                msd_label[label == brats] = msd
            _save(stacked, affine, tmp / "imagesTr" / f"{case}.nii.gz")
            _save(msd_label, affine, tmp / "labelsTr" / f"{case}.nii.gz")
            cases.append({"case": case, "files": [f"imagesTr/{case}.nii.gz", f"labelsTr/{case}.nii.gz"]})
    if params["layout"] == "msd":
        meta = {
            "name": "BrainTumourPhantom", "description": "Synthetic multimodal brain tumour MRI (vnas_monai phantoms)",
            "reference": "vnas_monai.data.brain_phantom", "licence": "CC0", "tensorImageSize": "4D",
            "modality": {str(k): name for k, (_, name) in enumerate(_MSD_ORDER)},
            "labels": {"0": "background", "1": "edema", "2": "non-enhancing tumor", "3": "enhancing tumour"},
            "numTraining": params["n_cases"], "numTest": 0,
            "training": [{"image": f"./{c['files'][0]}", "label": f"./{c['files'][1]}"} for c in cases],
            "test": [], "phantom": dict(params),
        }
        (tmp / "dataset.json").write_text(json.dumps(meta, indent=1) + "\n")
    return cases


def _complete(out: Path, params: Mapping[str, Any]) -> bool:
    try:
        marker = json.loads((out / _MARKER).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(marker, dict) or marker.get("params") != dict(params):
        return False
    return all((out / f).is_file() for c in marker.get("cases", []) for f in c["files"])


def make_brain_phantoms(out_dir: str | os.PathLike, n_cases: int = 4, shape: Sequence[int] = (48, 56, 40),
                        layout: str = "brats", seed: int = 0) -> str:
    """Write (or reuse) a synthetic brain tumour dataset (module docstring).

    Args:
        out_dir: the dataset folder to create.
        n_cases: number of cases.
        shape: voxels along (x, y, z) (1 mm isotropic).
        layout: ``"brats"`` or ``"msd"``.
        seed: the phantoms are a deterministic function of the parameters and this seed.

    Returns:
        ``out_dir`` as an absolute path string.

    Raises:
        ValueError: invalid parameters.
        FileExistsError: ``out_dir`` exists and holds something else than phantoms of this module.
    """
    params = _params(out_dir, n_cases, shape, layout, seed)
    out = Path(out_dir).expanduser().resolve()
    if _complete(out, params):
        return str(out)
    if out.exists() and not (out.is_dir() and (not any(out.iterdir()) or (out / _MARKER).is_file())):
        raise FileExistsError(f"{out} exists and is not a brain phantom dataset made by vnas_monai: not overwriting "
                              f"it.")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    os.chmod(tmp, 0o755)
    try:
        cases = _write(tmp, params)
        (tmp / _MARKER).write_text(json.dumps({"params": dict(params), "cases": cases}, indent=1) + "\n")  # last
        replace_dir(tmp, out, lambda path: _complete(path, params))
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return str(out)
