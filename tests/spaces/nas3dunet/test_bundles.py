"""The NAS-3D-U-Net bundle generator and its run-time helpers (``spaces/nas3dunet/{bundles,pipeline,exported}.py``):
the committed bundle is the generator's output, the splits follow Table 2's 1/5 for the hybrid parameters, the written
label values are the layout's, and inference finds the cases of BraTS folders."""

from __future__ import annotations

import json

import pytest

from tests.conftest import BUNDLES


def test_committed_bundle_is_the_generated_one():
    from monai.bundle import ConfigParser

    from vnas_monai.spaces.nas3dunet.bundles import build_configs

    for name, config in build_configs().items():
        path = BUNDLES / "nas3dunet_brats" / name
        assert path.read_text() == json.dumps(config, indent=4) + "\n", f"{path}: run python tools/generate_bundles.py"
        if name.startswith(("search", "train", "inference", "evaluate")):
            parser = ConfigParser(json.loads(path.read_text()))
            assert parser.get_parsed_content("work_dir") == "runs/nas3dunet_brats"
            assert parser.get_parsed_content("precision") == "auto"
            assert parser["run"]


def test_brain_splits_hold_out_the_fold_and_give_a_fifth_to_the_hybrid_parameters(tmp_path):
    from vnas_monai.data import make_brain_phantoms
    from vnas_monai.spaces.nas3dunet.pipeline import brain_splits

    root = make_brain_phantoms(tmp_path / "data", n_cases=12, shape=(16, 16, 16))
    splits = brain_splits(root, tmp_path / "work", "brats", fold=1, num_folds=4)
    names = {k: [c["case"] for c in v] for k, v in splits.items()}
    assert len(names["test"]) == 3 and len(names["val"]) == round(9 / 5) and len(names["train"]) == 7
    assert not set(names["test"]) & set(names["trainval"]) and not set(names["train"]) & set(names["val"])
    assert all(len(c["image"]) == 4 for c in splits["train"])
    again = brain_splits(root, tmp_path / "work", "brats", fold=1, num_folds=4)
    assert again == splits
    with pytest.raises(ValueError, match="num_folds=4, this run asks num_folds=3"):
        brain_splits(root, tmp_path / "work", "brats", fold=0, num_folds=3)
    with pytest.raises(ValueError, match="'layout' must be one of"):
        brain_splits(root, tmp_path / "other", "nih")


def test_output_labels_are_the_layout_values():
    from vnas_monai.data.regions import get_layout
    from vnas_monai.spaces.nas3dunet.exported import output_labels

    assert list(output_labels(get_layout("brats"))) == ["0", "1", "2", "4"]
    assert output_labels(get_layout("msd"))["3"] == "enhancing tumour"
    assert output_labels(get_layout("generic", 2)) == {"0": "background", "1": "region1", "2": "region2"}


def test_inference_cases_of_brats_folders(tmp_path):
    from vnas_monai.data import make_brain_phantoms
    from vnas_monai.spaces.nas3dunet.pipeline import brain_case_name, inference_cases

    root = make_brain_phantoms(tmp_path / "data", n_cases=2, shape=(16, 16, 16))
    cases = inference_cases(input_dir=root, layout="brats")
    assert len(cases) == 2 and all(len(c["image"]) == 4 for c in cases)
    assert [brain_case_name(c["image"]) for c in cases] == ["BraTSPhantom_00000", "BraTSPhantom_00001"]
    one = inference_cases(images=cases[0]["image"][0].rsplit("/", 1)[0], layout="brats")
    assert one == cases[:1]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        inference_cases(images=str(tmp_path / "missing.nii.gz"), layout="msd")
