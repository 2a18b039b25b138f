"""Label maps <-> BraTS regions (ET, TC, WT) for the BraTS and MSD conventions, and the generic layout."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from vnas_monai.data import LAYOUTS, LabelToRegionsd, RegionsToLabeld, get_layout, label_to_regions, regions_to_label


def _nested_label(values: tuple[int, int, int], seed: int = 0, shape=(12, 10, 8)) -> np.ndarray:
    """A label map of nested blobs: edema ⊃ core ⊃ enhancing, given as (edema, core, enhancing) label values."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"))
    d = np.sqrt((((grid.T - np.array(shape) / 2 - rng.uniform(-1, 1, 3)) / np.array(shape)) ** 2).sum(-1)).T
    label = np.zeros(shape, dtype=np.uint8)
    edema, core, enhancing = values
    label[d < 0.4] = edema
    label[d < 0.25] = core
    label[(d < 0.25) & (d > 0.15)] = enhancing
    label[rng.random(shape) < 0.02] = core  # isolated voxels of the middle class too
    return label[None]


def test_layout_table_and_region_order():
    assert get_layout("brats").names == ["ET", "TC", "WT"] == get_layout("MSD").names
    assert dict(LAYOUTS["brats"].regions) == {"ET": (4,), "TC": (1, 4), "WT": (1, 2, 4)}
    # MSD Task01 dataset.json: 1 edema, 2 non-enhancing tumour, 3 enhancing tumour
    assert dict(LAYOUTS["msd"].regions) == {"ET": (3,), "TC": (2, 3), "WT": (1, 2, 3)}
    with pytest.raises(ValueError, match=r"unknown region layout 'bratz'.*brats, msd, generic"):
        get_layout("bratz")
    with pytest.raises(ValueError, match="num_regions"):
        get_layout("generic")


@pytest.mark.parametrize("layout, values", [("brats", {"edema": 2, "core": 1, "et": 4}),
                                            ("msd", {"edema": 1, "core": 2, "et": 3})])
def test_each_label_maps_to_its_regions(layout, values):
    label = torch.tensor([0, values["edema"], values["core"], values["et"]]).reshape(1, 4, 1, 1)
    regions = label_to_regions(label, layout)
    assert regions.dtype == torch.float32 and regions.shape == (3, 4, 1, 1)
    expected = [[0, 0, 0, 1],  # ET: enhancing only
                [0, 0, 1, 1],  # TC: necrosis / non-enhancing + enhancing
                [0, 1, 1, 1]]  # WT: everything but background
    assert regions[:, :, 0, 0].tolist() == expected


@pytest.mark.parametrize("layout, values", [("brats", (2, 1, 4)), ("msd", (1, 2, 3))])
def test_round_trip_is_identity(layout, values):
    for seed in range(3):
        label = _nested_label(values, seed)
        assert set(np.unique(label)) == {0, *values}
        back = regions_to_label(label_to_regions(label, layout), layout)
        assert back.shape == label.shape
        np.testing.assert_array_equal(back.numpy(), label)


def test_dictionary_transforms_keep_meta_and_invert():
    label = MetaTensor(torch.as_tensor(_nested_label((2, 1, 4))), meta={"filename_or_obj": "case_seg.nii.gz"})
    d = LabelToRegionsd("label", "brats")({"label": label, "image": "untouched"})
    assert isinstance(d["label"], MetaTensor) and d["label"].shape == (3, 12, 10, 8)
    assert d["label"].meta["filename_or_obj"] == "case_seg.nii.gz" and d["image"] == "untouched"
    probs = d["label"] * 0.8 + 0.1  # sigmoid-like outputs: 0.9 inside, 0.1 outside
    out = RegionsToLabeld("label", "brats")({"label": probs})["label"]
    np.testing.assert_array_equal(out.numpy(), label.numpy())
    assert out.meta["filename_or_obj"] == "case_seg.nii.gz"
    arr = LabelToRegionsd("label", "msd")({"label": _nested_label((1, 2, 3)).astype(np.int16)})["label"]
    assert isinstance(arr, np.ndarray) and arr.shape == (3, 12, 10, 8)


def test_threshold_and_painting_order():
    # one voxel per column: probabilities (ET, TC, WT)
    probs = torch.tensor([[0.4, 0.6, 0.6, 0.2, 0.51],
                          [0.4, 0.4, 0.6, 0.7, 0.2],
                          [0.6, 0.2, 0.6, 0.9, 0.2]]).reshape(3, 5, 1, 1)
    brats = regions_to_label(probs, "brats")[0, :, 0, 0].tolist()
    msd = regions_to_label(probs, "msd")[0, :, 0, 0].tolist()
    assert brats == [2, 4, 4, 1, 4]  # WT only -> edema; ET wins wherever it is above 0.5
    assert msd == [1, 3, 3, 2, 3]
    assert regions_to_label(probs, "brats", threshold=0.65)[0, :, 0, 0].tolist() == [0, 0, 0, 1, 0]


def test_bad_labels_and_channels_name_the_key():
    with pytest.raises(ValueError, match=r"key 'label': label values \[3\] are not in the 'brats' layout"):
        LabelToRegionsd("label", "brats")({"label": torch.tensor([0, 3, 4]).reshape(1, 3, 1, 1)})
    with pytest.raises(ValueError, match=r"key 'pred': expected 3 region channels \['ET', 'TC', 'WT'\]"):
        RegionsToLabeld("pred", "msd")({"pred": torch.zeros(2, 4, 4, 4)})


def test_generic_layout_disjoint_regions():
    label = torch.tensor([0, 1, 2, 2, 1]).reshape(1, 5, 1, 1)
    regions = label_to_regions(label, "generic", num_regions=2)
    assert get_layout("generic", num_regions=2).names == ["region1", "region2"]
    assert regions[:, :, 0, 0].tolist() == [[0, 1, 0, 0, 1], [0, 0, 1, 1, 0]]
    np.testing.assert_array_equal(regions_to_label(regions, "generic").numpy(), label.numpy())
    probs = torch.tensor([[0.2, 0.7, 0.9], [0.3, 0.8, 0.6]]).reshape(2, 3, 1, 1)  # overlapping: most probable wins
    assert regions_to_label(probs, "generic")[0, :, 0, 0].tolist() == [0, 2, 1]
    with pytest.raises(ValueError, match=r"label values \[3\]"):
        label_to_regions(torch.tensor([3]).reshape(1, 1, 1, 1), "generic", num_regions=2)


def test_generic_round_trip_on_real_hippocampus(hippocampus_dir):
    entry = json.loads((hippocampus_dir / "dataset.json").read_text())["training"][0]
    label = np.asarray(nib.load(str(hippocampus_dir / entry["label"])).dataobj)[None]
    assert set(np.unique(label)) == {0, 1, 2}
    transform = LabelToRegionsd("label", "generic", num_regions=2)
    regions = transform({"label": torch.as_tensor(label)})["label"]
    assert regions.shape == (2, *label.shape[1:]) and float((regions.sum(0) > 1).sum()) == 0
    back = RegionsToLabeld("label", "generic", num_regions=2)({"label": regions})["label"]
    np.testing.assert_array_equal(back.numpy(), label)
