"""Synthetic CT-like phantoms in the MSD layout, so that every bundle runs end to end without a downloaded dataset.

Each case is an axial CT-like volume in Hounsfield units on an anisotropic grid (thick slices, like the abdominal CT
V-NAS is evaluated on): air at -1000 HU, a body ellipse of soft tissue (about 0..60 HU, smooth low-frequency variation
plus noise) under a thin fat layer (about -100 HU), a spine-like and a few rib-like bright blobs (300..700 HU), and
the target: an organ-shaped, smooth, randomly placed, bent and deformed blob (a "metaball" of three ellipsoids along a
curved axis) about +40..+60 HU brighter than the tissue around it, with soft (partial-volume) edges. Everything of
interest lies inside the paper's [-100, 240] HU window. With ``num_classes=3`` a smaller hypodense structure inside
the organ (label 2, like a pancreatic tumour) is added.

The task is deliberately easy: a small network learns it in a few epochs, which is what a smoke test of the whole
search / retrain / evaluate pipeline needs.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vnas_monai.io import replace_dir

__all__ = ["make_phantom_dataset", "resolve_dataset_dir", "PHANTOM_DIRNAME"]

logger = logging.getLogger(__name__)

#: Sub-folder of the output folder where :func:`resolve_dataset_dir` puts the phantoms.
PHANTOM_DIRNAME = "phantom_data"
#: Bumped whenever the generator changes what it writes, so that stale phantoms are regenerated.
GENERATOR_VERSION = 1
_PHANTOM_WORDS = ("", "phantom")


def _params(num_cases: Any, shape: Any, spacing: Any, seed: Any, num_classes: Any) -> dict[str, Any]:
    if isinstance(num_cases, bool) or not isinstance(num_cases, int) or num_cases < 1:
        raise ValueError(f"num_cases must be an int >= 1, got {num_cases!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}.")
    if num_classes not in (2, 3) or isinstance(num_classes, bool):
        raise ValueError(f"num_classes must be 2 (organ) or 3 (organ and tumour), got {num_classes!r}.")
    if (
        not isinstance(shape, (list, tuple))
        or len(shape) != 3
        or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 8 for s in shape)
    ):
        raise ValueError(f"shape must be 3 ints >= 8 (x, y, z voxels), got {shape!r}.")
    if not isinstance(spacing, (list, tuple)) or len(spacing) != 3:
        raise ValueError(f"spacing must be 3 positive numbers (mm), got {spacing!r}.")
    try:
        spacing = [float(s) for s in spacing]
    except (TypeError, ValueError):
        raise ValueError(f"spacing must be 3 positive numbers (mm), got {spacing!r}.") from None
    if not all(s > 0 and np.isfinite(s) for s in spacing):
        raise ValueError(f"spacing must be 3 positive numbers (mm), got {spacing!r}.")
    return {
        "generator": "vnas_monai.data.phantoms",
        "version": GENERATOR_VERSION,
        "num_cases": num_cases,
        "shape": [int(s) for s in shape],
        "spacing": spacing,
        "seed": seed,
        "num_classes": num_classes,
    }


def _is_complete(out_dir: Path, params: Mapping[str, Any]) -> bool:
    """True when ``out_dir`` holds a finished phantom dataset made with ``params``."""
    try:
        meta = json.loads((out_dir / "dataset.json").read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(meta, dict) or meta.get("phantom") != dict(params):
        return False
    training = meta.get("training")
    if not isinstance(training, list) or len(training) != params["num_cases"]:
        return False
    return all((out_dir / c[k]).is_file() for c in training for k in ("image", "label"))


def _is_phantom_dir(out_dir: Path) -> bool:
    """True when ``out_dir`` is empty or was written by this module (so it may be replaced)."""
    if not any(out_dir.iterdir()):
        return True
    try:
        meta = json.loads((out_dir / "dataset.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and isinstance(meta.get("phantom"), dict)


def _grid(shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalised voxel coordinates in [-1, 1] along each axis (broadcastable, not materialised)."""
    axes = [np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in shape]
    return np.ix_(*axes)


def _smooth_field(rng: np.random.Generator, u: Sequence[np.ndarray], terms: int = 4) -> np.ndarray:
    """A smooth random field in about [-1, 1]: the mean of a few low-frequency plane waves (built separably)."""
    field = np.zeros(np.broadcast_shapes(*(a.shape for a in u)), dtype=np.float32)
    for _ in range(terms):
        freq = rng.uniform(0.5, 2.0, size=3) * rng.choice([-1.0, 1.0], size=3) * np.array([1.0, 1.0, 0.5])
        phase = rng.uniform(0, 2 * np.pi)
        waves = [np.exp(1j * np.pi * f * a).astype(np.complex64) for f, a in zip(freq, u)]
        field += (waves[0] * waves[1] * (waves[2] * np.complex64(np.exp(1j * phase)))).real
    return field / terms


def _ellipsoid_d2(u: Sequence[np.ndarray], centre: np.ndarray, radii: np.ndarray, angle: float) -> np.ndarray:
    """Squared normalised distance to an ellipsoid rotated by ``angle`` in the axial (x, y) plane."""
    dx, dy, dz = u[0] - centre[0], u[1] - centre[1], u[2] - centre[2]
    c, s = np.cos(angle), np.sin(angle)
    rx, ry = c * dx + s * dy, -s * dx + c * dy
    return (rx / radii[0]) ** 2 + (ry / radii[1]) ** 2 + (dz / radii[2]) ** 2


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.clip(x, -30, 30)))).astype(np.float32)


def _make_case(rng: np.random.Generator, shape: Sequence[int], num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """One phantom: (image in HU, float32; label, uint8)."""
    u = _grid(shape)
    # body: an axial ellipse (constant along z) with a thin subcutaneous fat layer
    a, b = rng.uniform(0.8, 0.92), rng.uniform(0.62, 0.78)
    body_r = np.sqrt((u[0] / a) ** 2 + (u[1] / b) ** 2) + 0 * u[2]
    body = body_r <= 1.0
    fat = body & (body_r > 0.9)
    tissue = 30.0 + 15.0 * _smooth_field(rng, u)
    image = np.where(body, tissue, -1000.0).astype(np.float32)
    image[fat] = -100.0 + 0.3 * tissue[fat]

    # organ: a smooth union ("metaball") of three ellipsoids along a bent axis, with a low-frequency deformation
    centre = np.array([rng.uniform(-0.3, 0.3), rng.uniform(-0.25, 0.15), rng.uniform(-0.25, 0.25)], dtype=np.float32)
    angle = rng.uniform(0, np.pi)
    direction = np.array([np.cos(angle), np.sin(angle), rng.uniform(-0.3, 0.3)], dtype=np.float32)
    normal = np.array([-np.sin(angle), np.cos(angle), 0.0], dtype=np.float32)
    length, bend = rng.uniform(0.18, 0.3), rng.uniform(-0.12, 0.12)
    field = np.zeros(shape, dtype=np.float32)
    for t in (-1.0, 0.0, 1.0):
        c = centre + t * length * direction + bend * t * t * normal
        radii = np.array([rng.uniform(0.17, 0.24), rng.uniform(0.12, 0.18), rng.uniform(0.3, 0.5)], dtype=np.float32)
        field += np.exp(-_ellipsoid_d2(u, c, radii, angle + rng.uniform(-0.3, 0.3)))
    field += 0.12 * _smooth_field(rng, u, terms=3)
    inside = body & ~fat
    organ_soft = _sigmoid((field - 0.5) * 25.0) * inside  # partial-volume edge, about one voxel wide
    organ = (field > 0.5) & inside
    image += rng.uniform(40.0, 60.0) * organ_soft

    label = organ.astype(np.uint8)
    if num_classes == 3:
        _add_tumour(rng, u, field, organ, image, label)

    # bones: a spine-like column behind the organ and a few rib-like blobs near the body wall (never on the labels)
    bones = [(np.array([rng.uniform(-0.08, 0.08), 0.62 * b, 0.0]), np.array([0.13, 0.11, 5.0]))]
    for _ in range(int(rng.integers(2, 5))):
        phi = rng.uniform(0, 2 * np.pi)
        pos = np.array([0.84 * a * np.cos(phi), 0.84 * b * np.sin(phi), rng.uniform(-0.6, 0.6)])
        bones.append((pos, np.array([0.05, 0.05, rng.uniform(0.15, 0.5)])))
    for pos, radii in bones:
        blob = (_ellipsoid_d2(u, pos.astype(np.float32), radii.astype(np.float32), 0.0) <= 1.0) & body & (label == 0)
        image[blob] = rng.uniform(300.0, 700.0) + 0.2 * image[blob]

    image += rng.normal(0.0, 10.0, size=image.shape).astype(np.float32)
    return image.astype(np.float32), label


def _add_tumour(
    rng: np.random.Generator,
    u: Sequence[np.ndarray],
    field: np.ndarray,
    organ: np.ndarray,
    image: np.ndarray,
    label: np.ndarray,
) -> None:
    """Label 2: a small hypodense ellipsoid centred deep inside the organ (in place on ``image`` and ``label``)."""
    inner = np.argwhere(organ & (field >= np.quantile(field[organ], 0.7)))
    voxel = inner[rng.integers(len(inner))]
    centre = np.array([u[i].ravel()[voxel[i]] for i in range(3)], dtype=np.float32)
    radii = np.array([rng.uniform(0.08, 0.12), rng.uniform(0.08, 0.12), rng.uniform(0.15, 0.25)], dtype=np.float32)
    d2 = _ellipsoid_d2(u, centre, radii, rng.uniform(0, np.pi))
    tumour = (d2 <= 1.0) & organ
    tumour[tuple(voxel)] = True
    image -= rng.uniform(30.0, 40.0) * _sigmoid((1.0 - d2) * 6.0) * organ
    label[tumour] = 2


def _write_dataset(tmp: Path, params: Mapping[str, Any]) -> None:
    import nibabel as nib

    shape, spacing = params["shape"], params["spacing"]
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = -0.5 * (np.asarray(shape) - 1) * np.asarray(spacing)  # centred on the scanner origin
    (tmp / "imagesTr").mkdir()
    (tmp / "labelsTr").mkdir()
    training = []
    for i in range(params["num_cases"]):
        rng = np.random.default_rng([params["seed"], i])
        image, label = _make_case(rng, shape, params["num_classes"])
        name = f"phantom_{i:03d}.nii.gz"
        for data, sub in ((image, "imagesTr"), (label, "labelsTr")):
            nii = nib.Nifti1Image(data, affine)
            nii.header.set_xyzt_units("mm", "sec")
            nii.set_qform(affine, code=1)
            nii.set_sform(affine, code=1)
            nib.save(nii, tmp / sub / name)
        training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
    labels = {"0": "background", "1": "organ", "2": "tumour"}
    meta = {
        "name": "VNASPhantom",
        "description": "Synthetic CT-like phantoms (HU) with an organ-shaped target, for vnas_monai smoke tests",
        "reference": "vnas_monai.data.phantoms",
        "licence": "CC0",
        "tensorImageSize": "3D",
        "modality": {"0": "CT"},
        "labels": {k: v for k, v in labels.items() if int(k) < params["num_classes"]},
        "numTraining": params["num_cases"],
        "numTest": 0,
        "training": training,
        "test": [],
        "phantom": dict(params),
    }
    (tmp / "dataset.json").write_text(json.dumps(meta, indent=1) + "\n")


def make_phantom_dataset(
    out_dir: str | os.PathLike,
    num_cases: int = 12,
    shape: Sequence[int] = (64, 64, 32),
    spacing: Sequence[float] = (1.0, 1.0, 2.5),
    seed: int = 0,
    num_classes: int = 2,
) -> str:
    """Write (or reuse) a synthetic CT-like dataset in the MSD layout.

    The dataset is written to a temporary sibling folder and renamed into place at the end, so an interrupted run
    never leaves a half dataset that looks complete. If ``out_dir`` already holds a complete dataset made with the
    same parameters (recorded under ``"phantom"`` in its ``dataset.json``) nothing is written.

    Args:
        out_dir: the dataset folder to create.
        num_cases: number of image/label pairs.
        shape: voxels along (x, y, z); z is the slice axis.
        spacing: voxel size in mm along (x, y, z) (anisotropic by default: 2.5 mm slices).
        seed: the phantoms are a deterministic function of the parameters and this seed.
        num_classes: 2 (background, organ) or 3 (adds a tumour, label 2, inside the organ).

    Returns:
        ``out_dir`` as an absolute path string.

    Raises:
        ValueError: invalid parameters.
        FileExistsError: ``out_dir`` exists and holds something else than a phantom dataset (it is never replaced).
    """
    params = _params(num_cases, shape, spacing, seed, num_classes)
    out = Path(out_dir).expanduser().resolve()
    if _is_complete(out, params):
        return str(out)
    if out.exists() and not (out.is_dir() and _is_phantom_dir(out)):
        raise FileExistsError(f"{out} exists and is not a phantom dataset made by vnas_monai: not overwriting it.")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the dataset is meant to be shared like any output
    try:
        _write_dataset(tmp, params)
        _move_into_place(tmp, out, params)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return str(out)


def _move_into_place(tmp: Path, out: Path, params: Mapping[str, Any]) -> None:
    replace_dir(tmp, out, lambda path: _is_complete(path, params))


def resolve_dataset_dir(
    dataset_dir: str | os.PathLike | None, output_dir: str | os.PathLike | None, **phantom_kwargs: Any
) -> str:
    """The dataset folder a run should read: the given one, or synthetic phantoms when none is given.

    Args:
        dataset_dir: a dataset folder, or ``None`` / ``""`` / ``"phantom"`` for synthetic phantoms.
        output_dir: the run's output folder; phantoms go to ``<output_dir>/phantom_data``.
        **phantom_kwargs: passed to :func:`make_phantom_dataset` (``num_cases``, ``shape``, ``spacing``, ``seed``,
            ``num_classes``).

    Returns:
        An absolute path string.

    Raises:
        FileNotFoundError: ``dataset_dir`` is given and does not exist.
        ValueError: phantoms are asked for without an ``output_dir``.
    """
    if dataset_dir is None or str(dataset_dir).strip().lower() in _PHANTOM_WORDS:
        if output_dir is None or str(output_dir) == "":
            raise ValueError("output_dir is needed to generate phantoms when no dataset_dir is given.")
        path = make_phantom_dataset(Path(output_dir).expanduser() / PHANTOM_DIRNAME, **phantom_kwargs)
        logger.warning("No dataset_dir given: using synthetic CT phantoms in %s (not a real dataset).", path)
        return path
    path = Path(dataset_dir).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"dataset_dir {path} does not exist")
    return str(path.resolve())
