"""The NAS-3D-U-Net bundles (``bundles/nas3dunet_brats``, Wang, BraTS 2019) end to end through MONAI's
``ConfigWorkflow``: search -> train -> inference -> evaluate -> MONAI Label export, on the 4-channel brain phantom
(BraTS layout) and on the real MSD hippocampus as a one-modality, two-region ``generic`` case, at tiny sizes."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np

from tests.conftest import BUNDLES

BUNDLE = BUNDLES / "nas3dunet_brats"


def _run(stage: str, **overrides) -> None:
    from monai.bundle import ConfigWorkflow

    workflow = ConfigWorkflow(config_file=str(BUNDLE / f"{stage}.json"), workflow_type=None,
                              **{k: v for k, v in overrides.items()})
    workflow.initialize()
    workflow.run()
    workflow.finalize()


def _pipeline(work: Path, common: dict, tiny: dict) -> Path:
    """Run the four stages; returns the fold folder."""
    _run("search", run_id="search", **common, **tiny, max_epochs=2, stop_n_c=2)
    _run("train", **common, **tiny, max_epochs=1, val_interval=1)
    _run("inference", **common, infer_roi_size=tiny["roi_size"])
    _run("evaluate", **common, infer_roi_size=tiny["roi_size"])
    return work / "fold0"


def _check_search(fold: Path) -> dict:
    search = fold / "search"
    for name in ("genotype.json", "genotype_cells.png", "arch.json", "alpha_history.png", "genotype_counts.json"):
        assert (search / name).is_file(), name
    counts = json.loads((search / "genotype_counts.json").read_text())
    assert [e for e, _ in counts["history"]] == [1, 2]
    arch = json.loads((search / "arch.json").read_text())
    assert arch["space"] == "nas3dunet" and [h["epoch"] for h in arch["history"]] == [1, 2]
    from vnas_monai.spaces.nas3dunet import Genotype

    geno = Genotype.load(search / "genotype.json")
    assert geno.digest() in counts["counts"]
    stats = json.loads((fold / "brain_stats.json").read_text())
    assert len(stats["mean"]) == len(stats["std"])
    return stats


def _check_outputs(fold: Path, image_of, labels: set, regions: list, num_test: int, stats: dict) -> None:
    settings = json.loads((fold / "train" / "settings.json").read_text())
    assert (fold / "train" / "model.pt").is_file()
    assert settings["brain_stats"]["mean"] == stats["mean"] and settings["region_names"] == regions
    segs = sorted((fold / "infer").glob("*/*_seg.nii.gz"))
    assert len(segs) == num_test
    for seg in segs:
        ref = nib.load(image_of(seg.parent.name))
        out = nib.load(seg)
        assert out.shape == ref.shape[:3]
        np.testing.assert_allclose(out.affine, ref.affine, atol=1e-5)
        assert set(np.unique(np.asarray(out.dataobj)).tolist()) <= labels | {0}
    rows = (fold / "eval" / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + num_test and rows[0].startswith(f"case,{regions[0]}_dice,")
    summary = json.loads((fold / "eval" / "summary.json").read_text())
    assert sorted(summary["regions"]) == sorted(regions) and summary["num_cases"] == num_test
    for region in regions:
        dice = summary["regions"][region]["dice"]
        assert dice["n"] == num_test and 0.0 <= dice["mean"] <= 1.0


def test_phantom_search_train_infer_evaluate_export(tmp_path):
    """The 4-channel phantom (BraTS layout, labels 1/2/4) through every stage, then the MONAI Label export."""
    from monai.bundle import ConfigParser, ConfigWorkflow

    from vnas_monai.export import export_bundle

    work = tmp_path / "run"
    common = dict(work_dir=str(work), phantom_shape=[32, 32, 32], phantom_cases=6, num_folds=3)
    tiny = dict(roi_size=[32, 32, 32], epoch_length=2)
    fold = _pipeline(work, common, tiny)
    stats = _check_search(fold)
    assert len(stats["mean"]) == 4
    split = json.loads((work / "folds.json").read_text())["folds"][0]
    phantoms = work / "phantom_data"
    _check_outputs(fold, lambda case: phantoms / case / f"{case}_t1.nii.gz", {1, 2, 4}, ["ET", "TC", "WT"],
                   len(split), stats)

    # the run's settings.json carries the genotype: no --arch needed
    out = Path(export_bundle(str(tmp_path / "exported"), str(fold / "train"), bundle_dir=str(BUNDLE)))
    meta = json.loads((out / "configs" / "metadata.json").read_text())
    assert meta["network_data_format"]["outputs"]["pred"]["channel_def"] == {
        "0": "background", "1": "necrotic and non-enhancing tumour core", "2": "peritumoral edema",
        "4": "enhancing tumour"}
    parser = ConfigParser()
    parser.read_config(str(out / "configs" / "inference.json"))
    parser["bundle_root"] = str(out)
    net = parser.get_parsed_content("network_def")
    from vnas_monai.spaces.nas3dunet import Genotype, NAS3DUNet

    assert isinstance(net, NAS3DUNet)
    assert net.genotype.digest() == Genotype.load(fold / "train" / "genotype.json").digest()
    case = split[0]
    workflow = ConfigWorkflow(config_file=str(out / "configs" / "inference.json"), workflow_type=None,
                              bundle_root=str(out), images=str(phantoms / case), output_dir=str(tmp_path / "seg"))
    workflow.initialize()
    workflow.run()
    written = nib.load(tmp_path / "seg" / f"{case}_seg.nii.gz")
    ref = nib.load(phantoms / case / f"{case}_t1.nii.gz")
    assert written.shape == ref.shape and np.allclose(written.affine, ref.affine)
    assert set(np.unique(np.asarray(written.dataobj)).tolist()) <= {0, 1, 2, 4}
    train = ConfigParser()
    train.read_config(str(out / "configs" / "train.json"))
    assert train.get_parsed_content("loss").__class__.__name__ == "RegionDiceLoss"


def test_hippocampus_generic_layout(tmp_path, hippocampus_dir):
    """The real MSD hippocampus MRI as a one-modality, two-region case (layout 'generic': labels 1 and 2)."""
    work = tmp_path / "run"
    common = dict(work_dir=str(work), dataset_dir=str(hippocampus_dir), layout="generic", in_channels=1,
                  max_cases=3, num_folds=3)
    tiny = dict(roi_size=[32, 32, 32], epoch_length=1, flip_axes=[0])
    fold = _pipeline(work, common, tiny)
    stats = _check_search(fold)
    assert len(stats["mean"]) == 1
    folds = json.loads((work / "folds.json").read_text())
    assert folds["layout"] == "generic" and sum(len(f) for f in folds["folds"]) == 3
    _check_outputs(fold, lambda case: Path(hippocampus_dir) / "imagesTr" / f"{case}.nii.gz", {1, 2},
                   ["region1", "region2"], len(folds["folds"][0]), stats)
