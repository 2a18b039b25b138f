"""Multimodal brain tumour phantoms in the BraTS and MSD layouts, and the BraTS datalist reader."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from vnas_monai.data import brain_phantom, label_to_regions, load_brats_datalist, load_datalist, make_brain_phantoms

SHAPE = (48, 56, 40)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("brain_phantoms")
    return {layout: Path(make_brain_phantoms(root / layout, 2, layout=layout, seed=3)) for layout in ("brats", "msd")}


def _load(path: str) -> tuple[np.ndarray, np.ndarray]:
    img = nib.load(path)
    return np.asarray(img.dataobj), img.affine


def test_brats_layout_read_back(datasets):
    cases = load_brats_datalist(datasets["brats"])
    assert [c["case"] for c in cases] == ["BraTSPhantom_00000", "BraTSPhantom_00001"]
    for case in cases:
        names = [os.path.basename(p) for p in case["image"]]
        assert names == [f"{case['case']}_{m}.nii.gz" for m in ("t1", "t1ce", "t2", "flair")]
        images = [_load(p) for p in case["image"]]
        label, affine = _load(case["label"])
        assert label.shape == SHAPE and all(im.shape == SHAPE for im, _ in images)
        assert not np.allclose(affine, np.eye(4)) and all(np.allclose(a, affine) for _, a in images)
        brain = images[0][0] != 0
        assert 0.15 < brain.mean() < 0.5
        for im, _ in images:  # the same zero background in every modality, positive brain
            assert np.array_equal(im != 0, brain) and float(im[brain].min()) > 0
        assert set(np.unique(label)) == {0, 1, 2, 4}
        assert not (label[~brain]).any()  # the tumour lies inside the brain
        et, tc, wt = label_to_regions(label, "brats").numpy().astype(bool)
        assert et.sum() < tc.sum() < wt.sum() and not (et & ~tc).any() and not (tc & ~wt).any()
        # nested geometry: the core sits inside the edema's extent, the necrosis inside the enhancing rim's
        for inner, outer in ((tc, wt), (label == 1, et)):
            lo_i, hi_i = np.argwhere(inner).min(0), np.argwhere(inner).max(0)
            lo_o, hi_o = np.argwhere(outer).min(0), np.argwhere(outer).max(0)
            assert (lo_o <= lo_i).all() and (hi_i <= hi_o).all()
        healthy = brain & (label == 0)
        t1, t1ce, t2, flair = (im for im, _ in images)
        assert t1ce[label == 4].mean() > 1.5 * t1ce[healthy].mean()  # enhancing rim
        assert flair[label == 2].mean() > 1.4 * flair[healthy].mean()  # edema
        assert t2[label == 1].mean() > 1.5 * t2[healthy].mean() and t1[label == 1].mean() < t1[healthy].mean()


def test_msd_layout_matches_the_brats_one(datasets):
    meta = json.loads((datasets["msd"] / "dataset.json").read_text())
    assert meta["modality"] == {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"}
    assert meta["labels"] == {"0": "background", "1": "edema", "2": "non-enhancing tumor", "3": "enhancing tumour"}
    msd = load_datalist(datasets["msd"], layout="msd")
    brats = load_brats_datalist(datasets["brats"])
    assert len(msd) == 2 and [Path(c["image"]).name for c in msd] == ["BRATS_001.nii.gz", "BRATS_002.nii.gz"]
    for m, b in zip(msd, brats):
        image, affine = _load(m["image"])
        label, _ = _load(m["label"])
        assert image.shape == (*SHAPE, 4) and not np.allclose(affine, np.eye(4))
        assert set(np.unique(label)) == {0, 1, 2, 3}
        channels = [_load(p)[0] for p in b["image"]]  # t1, t1ce, t2, flair
        for c, index in enumerate((3, 0, 1, 2)):  # MSD order FLAIR, T1w, t1gd, T2w
            np.testing.assert_array_equal(image[..., c], channels[index])
        np.testing.assert_array_equal(label_to_regions(label, "msd").numpy(),
                                      label_to_regions(_load(b["label"])[0], "brats").numpy())


def test_written_atomically_reused_and_never_over_foreign_data(tmp_path, monkeypatch):
    out = tmp_path / "ds"
    calls = {"n": 0}
    real_save = brain_phantom._save

    def failing_save(*args):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        real_save(*args)

    monkeypatch.setattr(brain_phantom, "_save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        make_brain_phantoms(out, 2, shape=(24, 24, 20), layout="brats")
    assert not out.exists() and os.listdir(tmp_path) == []  # no partial dataset, no temporary folder left
    monkeypatch.setattr(brain_phantom, "_save", real_save)
    path = Path(make_brain_phantoms(out, 2, shape=(24, 24, 20), layout="brats"))
    stamp = (path / "phantom.json").stat().st_mtime_ns
    assert Path(make_brain_phantoms(out, 2, shape=(24, 24, 20), layout="brats")) == path
    assert (path / "phantom.json").stat().st_mtime_ns == stamp  # reused, not rewritten
    make_brain_phantoms(out, 1, shape=(24, 24, 20), layout="msd")  # other parameters: replaced
    assert sorted(os.listdir(out)) == ["dataset.json", "imagesTr", "labelsTr", "phantom.json"]
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="not a brain phantom dataset"):
        make_brain_phantoms(foreign, 1, shape=(24, 24, 20))
    with pytest.raises(ValueError, match="layout must be 'brats' or 'msd'"):
        make_brain_phantoms(tmp_path / "x", 1, layout="nih")


def test_brats_reader_grouped_folders_and_missing_files(datasets, tmp_path):
    root = tmp_path / "MICCAI_BraTS_2019_Data_Training"
    for group, case in (("HGG", "BraTSPhantom_00000"), ("LGG", "BraTSPhantom_00001")):
        shutil.copytree(datasets["brats"] / case, root / group / case)
    cases = load_brats_datalist(root)
    assert [Path(c["label"]).parent.parent.name for c in cases] == ["HGG", "LGG"]
    unlabelled = load_brats_datalist(root, label=None)
    assert all("label" not in c for c in unlabelled)
    (root / "LGG" / "BraTSPhantom_00001" / "BraTSPhantom_00001_flair.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"LGG/BraTSPhantom_00001 lacks BraTSPhantom_00001_flair\.nii\.gz"):
        load_brats_datalist(root)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no BraTS case folder below .*empty"):
        load_brats_datalist(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_brats_datalist(tmp_path / "nowhere")


@pytest.mark.parametrize("layout", ["brats", "msd"])
def test_monai_pipeline_on_both_layouts(datasets, layout):
    from monai.transforms import Compose, LoadImaged

    from vnas_monai.data import BrainWiseNormalized, LabelToRegionsd, fit_brain_stats

    cases = load_brats_datalist(datasets["brats"]) if layout == "brats" else load_datalist(datasets["msd"], "msd")
    stats = fit_brain_stats(cases)
    assert len(stats["mean"]) == 4 and all(s > 0 for s in stats["std"])
    pipeline = Compose([LoadImaged(["image", "label"], ensure_channel_first=True, image_only=True),
                        BrainWiseNormalized("image", stats["mean"], stats["std"]),
                        LabelToRegionsd("label", layout)])
    d = pipeline(cases[0])
    assert d["image"].shape == (4, *SHAPE) and d["label"].shape == (3, *SHAPE)
    brain = d["image"][0] != 0
    assert float(d["image"][:, brain].min()) == pytest.approx(10.0)
    assert float(d["image"].max()) == pytest.approx(110.0)
    assert float(d["label"][2][~brain].sum()) == 0 and float(d["label"][0].sum()) > 0
