"""Shared fixtures: the real data of ``../shared/data`` (skipped with a reason where absent) and small datasets made
from it in temporary folders (links to the real files plus derived labels; nothing is copied into the project)."""

from __future__ import annotations

import os

# The suite builds many small networks: one intra-op thread per process (subprocesses inherit it) avoids OpenMP
# spin-wait stalls, which slow a step by an order of magnitude when the 2-core CI machine has other work.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

REPO = Path(__file__).resolve().parents[1]
BUNDLES = REPO / "bundles"


def shared_data_dir() -> Path:
    return Path(os.environ.get("VNAS_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data not found at {path} (set VNAS_SHARED_DATA or place ../shared/data beside the repo)")
    return path


@pytest.fixture(scope="session")
def hippocampus_dir() -> Path:
    """MSD Task04 hippocampus (260 MRI, labels 0/1/2), MSD layout."""
    return _require(shared_data_dir() / "msd_hippocampus" / "dataset.json").parent


@pytest.fixture(scope="session")
def totalseg_dir() -> Path:
    return _require(shared_data_dir() / "totalseg_ct" / "example_ct_sm.nii.gz").parent


def _binary_label(src: Path, dst: Path, value: int = 7) -> None:
    import nibabel as nib

    img = nib.load(str(src))
    seg = (np.asarray(img.dataobj) == value).astype(np.uint8)
    nib.save(nib.Nifti1Image(seg, img.affine, img.header), str(dst))


@pytest.fixture(scope="session")
def pancreas_ct_msd(tmp_path_factory, totalseg_dir) -> Path:
    """MSD-layout dataset of 3 cases: links to the real CT volume, with its pancreas (TotalSegmentator label 7)."""
    root = tmp_path_factory.mktemp("pancreas_ct_msd")
    (root / "imagesTr").mkdir()
    (root / "labelsTr").mkdir()
    _binary_label(totalseg_dir / "example_seg.nii.gz", root / "pancreas.nii.gz")
    training = []
    for i in range(3):
        (root / "imagesTr" / f"case_{i:03d}.nii.gz").symlink_to(totalseg_dir / "example_ct_sm.nii.gz")
        (root / "labelsTr" / f"case_{i:03d}.nii.gz").symlink_to(root / "pancreas.nii.gz")
        training.append({"image": f"./imagesTr/case_{i:03d}.nii.gz", "label": f"./labelsTr/case_{i:03d}.nii.gz"})
    meta = {"name": "pancreas-ct-test", "labels": {"0": "background", "1": "pancreas"}, "modality": {"0": "CT"}}
    (root / "dataset.json").write_text(json.dumps({**meta, "numTraining": 3, "training": training}))
    return root


@pytest.fixture(scope="session")
def pancreas_ct_nih(tmp_path_factory, totalseg_dir) -> Path:
    """NIH Pancreas-CT layout (TCIA): a DICOM series per patient and ``labelNNNN.nii.gz``; 3 patients linking the real
    20-slice series, with its pancreas as label."""
    root = tmp_path_factory.mktemp("pancreas_ct_nih")
    labels = root / "TCIA_pancreas_labels-02-05-2017"
    labels.mkdir()
    for i in range(1, 4):
        patient = root / "Pancreas-CT" / f"PANCREAS_{i:04d}"
        series = patient / "11-24-2015-PANCREAS0001-Pancreas-18957" / "Pancreas-99667"
        series.parent.mkdir(parents=True)
        series.symlink_to(totalseg_dir / "example_ct_dicom", target_is_directory=True)
        _binary_label(totalseg_dir / "example_seg_dicom.nii.gz", labels / f"label{i:04d}.nii.gz")
    return root
