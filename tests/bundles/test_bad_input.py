"""Bad inputs stop the search bundle with an error naming the file or key, before any earlier output is touched.

A good tiny search first fills an output folder (arch.json, checkpoint, plot, folds.json); each test copies it, runs
the bundle again on one kind of bad input, checks the message and that every earlier output is byte-identical.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from monai.bundle import ConfigWorkflow

from tests.bundles.test_search_bundle import SEARCH, TINY, error_chain
from vnas_monai.data.transforms import dicom_series_uids
from vnas_monai.spaces.vnas.encoding import Architecture

SETTINGS = dict(TINY, max_epochs=1, arch_warmup_epochs=0, num_folds=1, spacing=[3.0, 3.0, 3.0])


def _workflow(work_dir: Path, **overrides) -> ConfigWorkflow:
    return ConfigWorkflow(config_file=SEARCH, workflow_type=None, run_id="search", work_dir=str(work_dir),
                          output_dir=str(work_dir / "search"), **{**SETTINGS, **overrides})


def _run(work_dir: Path, **overrides) -> None:
    workflow = _workflow(work_dir, **overrides)
    workflow.initialize()
    workflow.run()
    workflow.finalize()


@pytest.fixture(scope="module")
def earlier_run(tmp_path_factory, pancreas_ct_msd) -> Path:
    """Work folder of a completed tiny search (outputs that a bad rerun must leave intact)."""
    work = tmp_path_factory.mktemp("earlier") / "work"
    _run(work, dataset_dir=str(pancreas_ct_msd))
    assert (work / "search" / "arch.json").is_file() and (work / "search" / "checkpoint_final.pt").is_file()
    return work


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _fails_leaving_outputs_intact(earlier: Path, tmp_path: Path, match: str, **overrides) -> str:
    work = tmp_path / "work"
    shutil.copytree(earlier, work, symlinks=True)
    before = _snapshot(work)
    with pytest.raises(Exception) as info:
        _run(work, **overrides)
    message = error_chain(info.value)
    assert re.search(match, message), message[-3000:]
    after = _snapshot(work)
    changed = [name for name, data in before.items() if after.get(name) != data]
    assert not changed, f"earlier outputs modified or removed: {changed}"
    return message


def _msd_dataset(root: Path, source: Path, image=None, label=None) -> Path:
    """A copy of the 3-case MSD dataset whose case 0 image/label is replaced by the given files."""
    shutil.copytree(source, root, symlinks=True)
    for kind, replacement in (("imagesTr", image), ("labelsTr", label)):
        if replacement is not None:
            target = root / kind / "case_000.nii.gz"
            target.unlink()
            shutil.copyfile(replacement, target)
    return root


def _nifti(path: Path, array: np.ndarray, affine: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(array, affine), str(path))
    return path


def _case0(dataset: Path) -> tuple[nib.Nifti1Image, nib.Nifti1Image]:
    return (nib.load(str(dataset / "imagesTr" / "case_000.nii.gz")),
            nib.load(str(dataset / "labelsTr" / "case_000.nii.gz")))


def test_truncated_nifti(tmp_path, earlier_run, pancreas_ct_msd):
    src = (pancreas_ct_msd / "imagesTr" / "case_000.nii.gz").read_bytes()
    bad = tmp_path / "truncated.nii.gz"
    bad.write_bytes(src[: len(src) // 2])  # the header survives, the voxel data are cut
    data = _msd_dataset(tmp_path / "data", pancreas_ct_msd, image=bad)
    _fails_leaving_outputs_intact(earlier_run, tmp_path, r"Cannot load image .*imagesTr/case_000\.nii\.gz",
                                  dataset_dir=str(data), datalist_file=None)


def test_corrupt_nifti(tmp_path, earlier_run, pancreas_ct_msd):
    bad = tmp_path / "corrupt.nii.gz"
    bad.write_bytes(gzip.compress(b"this is not a nifti file" * 40))
    data = _msd_dataset(tmp_path / "data", pancreas_ct_msd, label=bad)
    _fails_leaving_outputs_intact(earlier_run, tmp_path, r"labelsTr/case_000\.nii\.gz", dataset_dir=str(data),
                                  datalist_file=None)


def test_image_and_label_of_different_shapes(tmp_path, earlier_run, pancreas_ct_msd):
    _, label = _case0(pancreas_ct_msd)
    bad = _nifti(tmp_path / "small.nii.gz", np.asarray(label.dataobj)[:-4], label.affine)
    data = _msd_dataset(tmp_path / "data", pancreas_ct_msd, label=bad)
    _fails_leaving_outputs_intact(earlier_run, tmp_path, r"case_000\.nii\.gz has spatial shape .* but its label",
                                  dataset_dir=str(data), datalist_file=None)


def test_image_and_label_of_different_orientation(tmp_path, earlier_run, pancreas_ct_msd):
    _, label = _case0(pancreas_ct_msd)
    flipped = label.affine.copy()
    flipped[:, 0] *= -1  # the label's x axis points the other way from the same origin: another physical grid
    bad = _nifti(tmp_path / "flipped.nii.gz", np.asarray(label.dataobj), flipped)
    data = _msd_dataset(tmp_path / "data", pancreas_ct_msd, label=bad)
    _fails_leaving_outputs_intact(earlier_run, tmp_path, r"imagesTr/case_000\.nii\.gz and its label .* not on the "
                                  r"same physical grid", dataset_dir=str(data), datalist_file=None)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_intensities(tmp_path, earlier_run, pancreas_ct_msd, value):
    image, _ = _case0(pancreas_ct_msd)
    array = np.asarray(image.dataobj, dtype=np.float32)
    array[10:12, 10:12, 5] = value
    bad = _nifti(tmp_path / "nonfinite.nii.gz", array, image.affine)
    data = _msd_dataset(tmp_path / "data", pancreas_ct_msd, image=bad)
    _fails_leaving_outputs_intact(earlier_run, tmp_path, r"Image .*imagesTr/case_000\.nii\.gz has 4 NaN/inf voxel",
                                  dataset_dir=str(data), datalist_file=None)


def test_label_values_outside_the_declared_classes(tmp_path, earlier_run, pancreas_ct_msd):
    _, label = _case0(pancreas_ct_msd)
    array = np.asarray(label.dataobj).copy()
    array[array == 1] = 3
    bad = _nifti(tmp_path / "label3.nii.gz", array, label.affine)
    data = _msd_dataset(tmp_path / "data", pancreas_ct_msd, label=bad)
    _fails_leaving_outputs_intact(earlier_run, tmp_path, r"Label .*labelsTr/case_000\.nii\.gz .* outside range\(2\): 3",
                                  dataset_dir=str(data), datalist_file=None)


_EMPTY_SERIES_UID = b" \x00\x0e\x00UI\x00\x00"  # (0020,000E) SeriesInstanceUID, explicit VR LE, empty (anonymised)


def _mixed_series_folder(folder: Path, series: Path) -> None:
    """A copy of ``series`` (whose SeriesInstanceUID is empty) in which half of the files get another series UID."""
    folder.mkdir(parents=True)
    files = sorted(p for p in series.iterdir() if p.is_file())
    for i, path in enumerate(files):
        data = path.read_bytes()
        assert data.count(_EMPTY_SERIES_UID) == 1, f"{path}: unexpected SeriesInstanceUID encoding"
        other = b" \x00\x0e\x00UI\x08\x001.2.3.4\x00"  # value "1.2.3.4" padded to an even length
        (folder / path.name).write_bytes(data.replace(_EMPTY_SERIES_UID, other) if i % 2 else data)
    assert len(dicom_series_uids(folder)) == 2


@pytest.mark.slow
def test_dicom_folder_with_mixed_series(tmp_path, earlier_run, pancreas_ct_nih):
    data = tmp_path / "nih"
    shutil.copytree(pancreas_ct_nih, data, symlinks=True)
    series_link = next((data / "Pancreas-CT" / "PANCREAS_0001").rglob("Pancreas-99667"))
    real = series_link.resolve()
    series_link.unlink()
    _mixed_series_folder(series_link, real)
    _fails_leaving_outputs_intact(earlier_run, tmp_path, r"DICOM folder .*PANCREAS_0001.* holds 2 series",
                                  dataset_dir=str(data), datalist_file=None, layout="nih", spacing=None)


def test_empty_fold(tmp_path, earlier_run, pancreas_ct_msd):
    folds_file = tmp_path / "folds.json"
    case = {"image": str(pancreas_ct_msd / "imagesTr" / "case_000.nii.gz"),
            "label": str(pancreas_ct_msd / "labelsTr" / "case_000.nii.gz")}
    folds_file.write_text(json.dumps({"num_folds": 2, "seed": 0, "folds": [[case], []]}))
    _fails_leaving_outputs_intact(earlier_run, tmp_path, re.escape(str(folds_file)) + r".* fold 1 must be a non-empty",
                                  dataset_dir=str(pancreas_ct_msd), datalist_file=str(folds_file), num_folds=2)


def test_checkpoint_of_another_architecture(tmp_path, earlier_run, pancreas_ct_msd):
    message = _fails_leaving_outputs_intact(earlier_run, tmp_path, r"cannot resume from checkpoint .*search/"
                                            r"checkpoint_final\.pt", dataset_dir=str(pancreas_ct_msd),
                                            init_filters=8, max_epochs=2)
    assert "resume=false" in message and "size mismatch" in message


def test_misspelt_config_key(tmp_path, earlier_run, pancreas_ct_msd):
    _fails_leaving_outputs_intact(earlier_run, tmp_path, r"'arch_warmup_epoch': did you mean 'arch_warmup_epochs'",
                                  dataset_dir=str(pancreas_ct_msd), arch_warmup_epoch=3)


def test_unknown_loss_value(tmp_path, earlier_run, pancreas_ct_msd):
    # a misspelt value must not silently pick one of the two losses
    _fails_leaving_outputs_intact(earlier_run, tmp_path, r"loss: unknown value 'dicece'; choose one of "
                                  r"\['ce', 'dice_ce'\]", dataset_dir=str(pancreas_ct_msd), loss="dicece")


def test_arch_json_of_the_wrong_shape(tmp_path, earlier_run):
    arch = json.loads((earlier_run / "search" / "arch.json").read_text())
    arch["encoder"] = arch["encoder"][:-1]  # 15 encoder cells instead of 16
    bad = tmp_path / "arch.json"
    bad.write_text(json.dumps(arch))
    before = bad.read_bytes()
    with pytest.raises(ValueError, match=re.escape(str(bad)) + r".*encoder"):
        Architecture.load(bad)
    assert bad.read_bytes() == before
