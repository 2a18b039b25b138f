"""End-to-end runs of ``bundles/*/inference.json`` through MONAI's ``ConfigWorkflow``: segmentations of NIfTI files
and DICOM series (real CT), written on each input image's grid."""

from __future__ import annotations

import re

import numpy as np
import pytest
from monai.transforms import LoadImage

from tests.bundles.test_search_bundle import error_chain
from tests.bundles.test_train_bundle import random_checkpoint, run_stage


def check_same_grid(seg_path, image_path) -> np.ndarray:
    """The written segmentation has the input's shape and affine (as MONAI's default readers load them)."""
    image = LoadImage(image_only=True)(str(image_path))  # ITKReader for a DICOM series
    seg = LoadImage(image_only=True)(str(seg_path))
    assert tuple(seg.shape) == tuple(image.shape), (seg.shape, image.shape)
    np.testing.assert_allclose(seg.affine.numpy(), image.affine.numpy(), atol=1e-3)
    values = np.unique(seg.numpy())
    assert set(values.tolist()) <= {0, 1}, values
    return seg.numpy()


@pytest.mark.slow
def test_inference_on_dicom_series_and_nifti_without_labels(tmp_path, pancreas_ct_nih, totalseg_dir):
    ckpt = random_checkpoint(tmp_path / "model.pt", arch="msd_pancreas")
    series = sorted((pancreas_ct_nih / "Pancreas-CT").glob("PANCREAS_0001/*/*"))[0]
    nifti = totalseg_dir / "example_ct_sm.nii.gz"
    out = tmp_path / "infer"
    # arch "auto": the architecture is read from the checkpoint's arch_code (msd_pancreas here, not the bundle's nih)
    run_stage("inference", tmp_path, checkpoint=str(ckpt), images=[str(series), str(nifti)], output_dir=str(out),
              spacing=[4.0, 4.0, 4.0])
    check_same_grid(out / "PANCREAS_0001" / "PANCREAS_0001_seg.nii.gz", series)
    check_same_grid(out / "example_ct_sm" / "example_ct_sm_seg.nii.gz", nifti)


@pytest.mark.slow
def test_inference_on_an_input_dir_native_grid(tmp_path, totalseg_dir):
    ckpt = random_checkpoint(tmp_path / "model.pt")
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "ct_a.nii.gz").symlink_to(totalseg_dir / "example_ct_sm.nii.gz")
    out = tmp_path / "infer"
    run_stage("inference", tmp_path, checkpoint=str(ckpt), input_dir=str(inputs), output_dir=str(out))
    check_same_grid(out / "ct_a" / "ct_a_seg.nii.gz", inputs / "ct_a.nii.gz")
    assert [p.name for p in out.iterdir()] == ["ct_a"]


@pytest.mark.slow
def test_compiled_inference_writes_the_eager_segmentation(tmp_path, totalseg_dir):
    # the bundle key compile: the network compiled with frozen weights (issue 12); fp32 so that the two agree
    ckpt = random_checkpoint(tmp_path / "model.pt")
    image = totalseg_dir / "example_ct_sm.nii.gz"
    segs = {}
    for compile_network in (False, True):
        out = tmp_path / f"infer_{compile_network}"
        workflow = run_stage("inference", tmp_path, checkpoint=str(ckpt), images=[str(image)], output_dir=str(out),
                             spacing=[4.0, 4.0, 4.0], precision="fp32", compile=compile_network)
        compiler = workflow.parser.get_parsed_content("inferer").compiler
        assert (compiler is None) != compile_network
        segs[compile_network] = check_same_grid(out / "example_ct_sm" / "example_ct_sm_seg.nii.gz", image)
    assert compiler.compilations == 1 and compiler.failed is None
    assert 0.01 < segs[False].mean() < 0.99, segs[False].mean()  # random weights, yet both classes: a real check
    assert (segs[True] == segs[False]).mean() > 0.999


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(checkpoint="/no/such/model.pt", arch="nih"), "/no/such/model.pt"),
        (dict(images=["/no/such/ct.nii.gz"]), "/no/such/ct.nii.gz"),
        (dict(images=None, input_dir="/no/such/folder"), "/no/such/folder"),
        (dict(arch="msd_lung"), "architecture"),  # the checkpoint is nih: VNASNet refuses it
    ],
)
def test_inference_bad_inputs_are_named(tmp_path, totalseg_dir, overrides, match):
    ckpt = random_checkpoint(tmp_path / "model.pt", arch="nih")
    config = dict(checkpoint=str(ckpt), images=[str(totalseg_dir / "example_ct_sm.nii.gz")])
    with pytest.raises(Exception) as info:
        run_stage("inference", tmp_path, **{**config, **overrides})
    assert re.search(match, error_chain(info.value)), error_chain(info.value)
    assert not (tmp_path / "fold0" / "infer").exists()
