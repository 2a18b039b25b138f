"""Two-channel MRI-like phantoms in the MSD Task05 (prostate) layout, so that the MB-NAS prostate bundle runs end to
end without the data set (Bosma et al., SPIE 2022, §3: MSD prostate, T2 and ADC).

Each case starts from a CT-like phantom of :func:`vnas_monai.data.make_phantom_dataset` (the organ, and with
``num_classes=3`` an inner structure, label 2, standing in for the transition zone) and becomes a 4D NIfTI image,
channels last as in the decathlon's prostate files: channel 0 a "T2-like" contrast (the phantom's intensities
rescaled, the organ brighter), channel 1 an "ADC-like" one (a decreasing function of the same tissue, the organ
darker, with its own noise). Both channels carry the target, with different contrasts; nothing of interest is
clipped. Written to a temporary sibling folder and renamed into place, reused when complete with the same
parameters (its ``dataset.json`` records them under ``"phantom"``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .phantoms import PHANTOM_DIRNAME, make_phantom_dataset

__all__ = ["make_mr_phantom_dataset", "resolve_mr_dataset_dir"]

GENERATOR_VERSION = 1


def _params(num_cases: int, shape: Any, seed: int, num_classes: int) -> dict[str, Any]:
    return {"generator": "vnas_monai.data.mr_phantom", "version": GENERATOR_VERSION, "num_cases": int(num_cases),
            "shape": [int(s) for s in shape], "seed": int(seed), "num_classes": int(num_classes), "channels": 2}


def _complete(out: Path, params: dict[str, Any]) -> bool:
    try:
        meta = json.loads((out / "dataset.json").read_text())
    except (OSError, ValueError):
        return False
    return meta.get("phantom") == params and all((out / c[k]).is_file() for c in meta.get("training", [])
                                                 for k in ("image", "label"))


def make_mr_phantom_dataset(out_dir: str | os.PathLike, num_cases: int = 8, shape: tuple = (64, 64, 16),
                            seed: int = 0, num_classes: int = 3) -> str:
    """Write (or reuse) a 2-channel MRI-like phantom dataset in the MSD layout (module docstring).

    Args:
        out_dir: the dataset folder.
        num_cases: image/label pairs.
        shape: voxels (x, y, z), z the slice axis.
        seed: the phantoms are a function of the parameters and this seed.
        num_classes: 2 (organ) or 3 (organ and an inner zone).

    Returns:
        ``out_dir`` as an absolute path string.

    Raises:
        ValueError: invalid parameters (from :func:`vnas_monai.data.make_phantom_dataset`).
        FileExistsError: ``out_dir`` holds something else than a phantom dataset.
    """
    import nibabel as nib

    params = _params(num_cases, shape, seed, num_classes)
    out = Path(out_dir).expanduser().resolve()
    if _complete(out, params):
        return str(out)
    if out.exists() and any(out.iterdir()) and not (out / "dataset.json").is_file():
        raise FileExistsError(f"{out} exists and is not a phantom dataset made by vnas_monai: not overwriting it.")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        ct = Path(make_phantom_dataset(tmp / "ct", num_cases=num_cases, shape=tuple(shape), seed=seed,
                                       num_classes=num_classes, spacing=(0.6, 0.6, 3.0)))
        ct_meta = json.loads((ct / "dataset.json").read_text())
        (tmp / "data" / "imagesTr").mkdir(parents=True)
        (tmp / "data" / "labelsTr").mkdir()
        training = []
        for i, case in enumerate(ct_meta["training"]):
            rng = np.random.default_rng([seed, i, 5])
            nii = nib.load(ct / case["image"])
            hu = np.clip(np.asarray(nii.dataobj, dtype=np.float32), -200.0, 300.0)
            t2 = 400.0 + 4.0 * hu + rng.normal(0.0, 20.0, hu.shape).astype(np.float32)
            adc = 2000.0 - 6.0 * hu + rng.normal(0.0, 60.0, hu.shape).astype(np.float32)
            image = nib.Nifti1Image(np.stack([t2, adc], axis=-1).astype(np.float32), nii.affine)
            image.header.set_xyzt_units("mm", "sec")
            name = Path(case["image"]).name.replace("phantom_", "prostate_phantom_")
            nib.save(image, tmp / "data" / "imagesTr" / name)
            shutil.copyfile(ct / case["label"], tmp / "data" / "labelsTr" / name)
            training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
        labels = {"0": "background", "1": "peripheral zone", "2": "transition zone"}
        meta = {"name": "MBNASProstatePhantom", "description": "Synthetic 2-channel MRI-like phantoms (T2-like, "
                "ADC-like) for vnas_monai smoke tests", "reference": "vnas_monai.data.mr_phantom", "licence": "CC0",
                "tensorImageSize": "4D", "modality": {"0": "T2", "1": "ADC"},
                "labels": {k: v for k, v in labels.items() if int(k) < num_classes},
                "numTraining": len(training), "numTest": 0, "training": training, "test": [], "phantom": params}
        (tmp / "data" / "dataset.json").write_text(json.dumps(meta, indent=1) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.rename(tmp / "data", out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return str(out)


def resolve_mr_dataset_dir(dataset_dir: str | os.PathLike | None, output_dir: str | os.PathLike,
                           **phantom_kwargs: Any) -> str:
    """``dataset_dir``, or 2-channel phantoms in ``<output_dir>/phantom_data`` when it is ``None`` / ``""`` /
    ``"phantom"`` (:func:`vnas_monai.data.resolve_dataset_dir` for 2 channels).

    Raises:
        FileNotFoundError: ``dataset_dir`` is given and does not exist.
    """
    if dataset_dir is None or str(dataset_dir).strip().lower() in ("", "phantom"):
        return make_mr_phantom_dataset(Path(output_dir).expanduser() / PHANTOM_DIRNAME, **phantom_kwargs)
    path = Path(dataset_dir).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"dataset_dir {path} does not exist (bundle key 'dataset_dir').")
    return str(path.resolve())
