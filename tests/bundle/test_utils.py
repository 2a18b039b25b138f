"""Architectures, weights files, inference datalists and case names of the stages (``vnas_monai.bundle.utils``)."""

from __future__ import annotations

import pytest
import torch

from vnas_monai.bundle import (
    case_name,
    case_name_formatter,
    checkpoint_architecture,
    evaluation_datalist,
    inference_datalist,
    load_state_dict,
    load_weights,
    resolve_architecture,
)
from vnas_monai.spaces.vnas import VNASNet
from vnas_monai.spaces.vnas.encoding import Architecture


@pytest.fixture(scope="module")
def lung_net() -> VNASNet:
    torch.manual_seed(0)
    return VNASNet(architecture="msd_lung", init_filters=4)


def test_weights_load_plain_and_wrapped(tmp_path, lung_net):
    plain, wrapped = tmp_path / "plain.pt", tmp_path / "wrapped.pt"
    torch.save(lung_net.state_dict(), plain)
    torch.save({"model": lung_net.state_dict()}, wrapped)
    for path in (plain, wrapped):
        net = load_weights(VNASNet(architecture="msd_lung", init_filters=4), path)
        assert torch.equal(net.stem.conv1.conv.weight, lung_net.stem.conv1.conv.weight)
        assert checkpoint_architecture(path) == Architecture.preset("msd_lung")
    assert set(load_state_dict(plain)) == set(lung_net.state_dict())


def test_weights_of_another_architecture_are_refused(tmp_path, lung_net):
    path = tmp_path / "model.pt"
    torch.save(lung_net.state_dict(), path)
    with pytest.raises(ValueError, match="model.pt"):
        load_weights(VNASNet(architecture="nih", init_filters=4), path)


def test_bad_weights_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_state_dict(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt"):
        load_state_dict(tmp_path / "junk.pt")
    torch.save({"weight": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="arch_code"):
        checkpoint_architecture(tmp_path / "other.pt")


def test_resolve_architecture_order(tmp_path, lung_net):
    ckpt, search = tmp_path / "model.pt", tmp_path / "arch.json"
    assert resolve_architecture("msd_pancreas", ckpt, search, "nih") == Architecture.preset("msd_pancreas")
    assert resolve_architecture("auto", ckpt, search, "nih") == Architecture.preset("nih")  # fallback
    Architecture.uniform("p3d").save(search)
    assert resolve_architecture("auto", ckpt, search, "nih") == Architecture.uniform("p3d")
    assert resolve_architecture(str(search)) == Architecture.uniform("p3d")
    torch.save(lung_net.state_dict(), ckpt)
    assert resolve_architecture("auto", ckpt, search, "nih") == Architecture.preset("msd_lung")
    with pytest.raises(FileNotFoundError, match="nothing_here.json"):
        resolve_architecture("auto", None, tmp_path / "nothing_here.json", None)
    with pytest.raises(ValueError, match="bogus"):
        resolve_architecture("bogus")


def test_case_names():
    assert case_name("/d/imagesTs/lung_001.nii.gz") == "lung_001"
    assert case_name("/d/x/ct.nii") == "ct"
    assert case_name("/d/Pancreas-CT/PANCREAS_0007/11-24-2015-x/Pancreas-99667") == "PANCREAS_0007"
    assert case_name("/d/Pancreas-CT/PANCREAS_0007/s/Pancreas-99667/1-001.dcm") == "PANCREAS_0007"
    assert case_name("/d/series_42") == "series_42"
    formatted = case_name_formatter({"filename_or_obj": "/d/a/PANCREAS_0002/s/series"})
    assert formatted == {"subject": "PANCREAS_0002", "idx": None}


def test_inference_datalist_sources(tmp_path):
    (tmp_path / "in").mkdir()
    nifti = tmp_path / "in" / "a.nii.gz"
    nifti.write_bytes(b"")
    series = tmp_path / "in" / "PANCREAS_0003" / "study" / "series"
    series.mkdir(parents=True)
    for i in range(3):
        (series / f"1-{i:03d}.dcm").write_bytes(b"")

    def never():
        raise AssertionError("splits must not be computed when images are given")

    assert inference_datalist(images=str(nifti), splits=never) == [{"image": str(nifti)}]
    assert inference_datalist(images=[{"image": str(series)}], splits=never) == [{"image": str(series)}]
    found = inference_datalist(input_dir=tmp_path / "in", splits=never)  # sorted by path
    assert found == [{"image": str(series)}, {"image": str(nifti)}]
    splits = {"test": [{"image": str(nifti), "label": "/l.nii.gz"}], "train": []}
    assert inference_datalist(splits=lambda: splits) == [{"image": str(nifti)}]  # labels dropped


def test_inference_datalist_errors_name_the_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.nii.gz"):
        inference_datalist(images=[str(tmp_path / "missing.nii.gz")])
    with pytest.raises(FileNotFoundError, match="no_dir"):
        inference_datalist(input_dir=tmp_path / "no_dir")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty"):
        inference_datalist(input_dir=tmp_path / "empty")
    for sub in ("x", "y"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "ct.nii.gz").write_bytes(b"")
    with pytest.raises(ValueError, match="ct"):
        inference_datalist(images=[str(tmp_path / "x" / "ct.nii.gz"), str(tmp_path / "y" / "ct.nii.gz")])
    with pytest.raises(ValueError, match="S_test"):
        inference_datalist(splits={"test": []})


def test_evaluation_datalist():
    splits = {"test": [{"image": "/i.nii.gz", "label": "/l.nii.gz"}], "val": [], "train": [{"image": "/j.nii.gz"}]}
    assert evaluation_datalist(splits) == splits["test"]
    with pytest.raises(ValueError, match="S_val is empty"):
        evaluation_datalist(splits, "val")
    with pytest.raises(ValueError, match="no label"):
        evaluation_datalist(splits, "train")
    with pytest.raises(ValueError, match="'holdout'"):
        evaluation_datalist(splits, "holdout")


def test_resolve_class_names(tmp_path):
    from vnas_monai.bundle import resolve_class_names

    assert resolve_class_names(["bg", "a", "b"], 3) == ["bg", "a", "b"]
    with pytest.raises(ValueError, match=r"class_names lists 2 name\(s\).*num_classes is 3"):
        resolve_class_names(["background", "pancreas"], 3)
    assert resolve_class_names("auto", 3) == ["background", "class_1", "class_2"]
    (tmp_path / "dataset.json").write_text('{"labels": {"0": "background", "1": "Anterior", "2": "Posterior"}}')
    assert resolve_class_names("auto", 3, tmp_path) == ["background", "Anterior", "Posterior"]
    assert resolve_class_names("auto", 2, tmp_path) == ["background", "class_1"]  # labels of another class count
    with pytest.raises(ValueError, match="list of names or 'auto'"):
        resolve_class_names("pancreas", 2)


def test_dice_weight():
    from vnas_monai.bundle import dice_weight

    assert dice_weight("ce") == 0.0 and dice_weight("dice_ce") == 1.0 and dice_weight("Dice_CE") == 1.0
    for bad in ("dice", "", None, 1):
        with pytest.raises(ValueError, match="loss: unknown value"):
            dice_weight(bad)


def test_parse_flip_axes():
    from vnas_monai.bundle import parse_flip_axes

    assert parse_flip_axes([1, 0, 1]) == [0, 1] and parse_flip_axes(2) == [2]
    assert parse_flip_axes([]) == parse_flip_axes(None) == parse_flip_axes("none") == parse_flip_axes(False) == []
    for bad in ([3], [-1], ["0"], [True], 0.5):
        with pytest.raises(ValueError, match="flip_axes must be spatial axes"):
            parse_flip_axes(bad)
