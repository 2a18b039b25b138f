"""The MB-NAS trial (Bosma et al., SPIE 2022, §2.3): one encoding trained on phantom slices at tiny sizes scores a
validation Dice in [0, 1], deterministically for a seed, and ships by pickle; its data, score rule and errors."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest
import torch

from vnas_monai.data import load_datalist, make_phantom_dataset
from vnas_monai.data.mr_phantom import make_mr_phantom_dataset
from vnas_monai.data.slices import Volume, load_volumes, pad_to_multiple, training_slices
from vnas_monai.spaces.mbnas import unet_encoding
from vnas_monai.spaces.mbnas.cost import cost_report
from vnas_monai.spaces.mbnas.trial import SliceTrial, last_fraction_mean, volume_dice

UNET6 = unet_encoding(6, max_downsamplings=2)


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    root = make_phantom_dataset(tmp_path_factory.mktemp("ph") / "data", num_cases=6, shape=(32, 32, 8))
    return load_datalist(root)


def _trial(cases, **kw):
    settings = dict(num_folds=3, patch_size=(32, 32), batch_size=8, epochs=5, steps_per_epoch=3, init_channels=4,
                    intensity_clip=(-100, 240), device="cpu")
    settings.update(kw)
    return SliceTrial(cases, **settings)


def test_a_trial_scores_a_dice_in_0_1_deterministically_for_a_seed(cases):
    trial = _trial(cases)
    first = trial(UNET6, 0, 0)
    assert 0.0 <= first["score"] <= 1.0 and first["epochs"] == 5 and first["steps"] == 15
    assert first["val_cases"] == 2 and len(first["val_dice"]) == 1  # only the scored last 20 % are validated
    assert first["score"] == pytest.approx(np.mean(first["val_dice"]))
    cost = cost_report(UNET6, (32, 32), 1, 2, 4)
    assert (first["params"], first["macs"]) == (cost["params"], cost["macs"])
    again = pickle.loads(pickle.dumps(trial))(UNET6, 0, 0)  # as a Dask worker receives it
    same = {k: v for k, v in first.items() if k != "time_s"}
    assert {k: v for k, v in again.items() if k != "time_s"} == same
    other_fold = trial(UNET6, 1, 0)
    assert 0.0 <= other_fold["score"] <= 1.0


def test_the_recipe_learns_the_phantom_and_a_time_budget_validates_every_epoch(cases):
    result = _trial(cases, epochs=8, steps_per_epoch=8, init_channels=8, learning_rate=1e-2)(UNET6, 0, 1)
    assert result["score"] > 0.5, result  # measured 0.79
    timed = _trial(cases, epochs=50, steps_per_epoch=2, max_seconds=0.0)(UNET6, 0, 0)
    assert timed["epochs"] == 1 and len(timed["val_dice"]) == 1  # stopped after the epoch that passed the budget


def test_a_3d_trial_runs_on_whole_volumes(cases):
    result = _trial(cases, spatial_dims=3, patch_size=(32, 32, 8), batch_size=2, epochs=2, steps_per_epoch=1)(
        UNET6, 0, 0)
    assert 0.0 <= result["score"] <= 1.0 and result["train_samples"] == 4


def test_channels_last_on_cpu_trains_the_same_network(cases):
    """``memory_format="auto"`` is channels-last on a CPU (the faster layout there); the layout changes the float
    rounding, not the network: both layouts learn the phantom to about the same validation Dice."""
    trial = _trial(cases, epochs=4, steps_per_epoch=4, init_channels=8, learning_rate=1e-2)
    assert trial.layout(torch.device("cpu")) == torch.channels_last
    assert dataclasses.replace(trial, spatial_dims=3, patch_size=(32, 32, 8)).layout(
        torch.device("cpu")) == torch.channels_last_3d
    contiguous = dataclasses.replace(trial, memory_format="contiguous")
    assert contiguous.layout(torch.device("cpu")) == torch.contiguous_format
    assert trial.layout(torch.device("cuda")) == torch.contiguous_format  # not measured on GPUs: the default there
    net, info = trial.train(UNET6, trial.split(0)[0], 0, trial.split(0)[1])
    assert next(p for p in net.parameters() if p.dim() == 4).is_contiguous(memory_format=torch.channels_last)
    _, reference = contiguous.train(UNET6, trial.split(0)[0], 0, trial.split(0)[1])
    assert info["val_dice"][-1] == pytest.approx(reference["val_dice"][-1], abs=0.1)


def test_score_rule_and_volume_dice():
    assert last_fraction_mean(list(range(1, 11))) == 9.5  # the last 20 % of 10 epochs: 9 and 10
    assert last_fraction_mean([0.2, 0.4, 0.6]) == 0.6
    with pytest.raises(ValueError, match="no validation"):
        last_fraction_mean([])
    pred, label = torch.zeros(4, 4, 2, dtype=torch.long), torch.zeros(4, 4, 2, dtype=torch.long)
    pred[:2, :, 0], label[:1, :, 0] = 1, 1  # |P| = 8, |G| = 4, overlap 4
    assert volume_dice(pred, label, 2) == pytest.approx(8 / 12)
    assert volume_dice(pred, label, 3) == pytest.approx(8 / 12)  # class 2 absent from both: left out
    assert volume_dice(torch.zeros_like(pred), torch.zeros_like(label), 2) == 0.0


def test_training_slices_keep_every_foreground_slice_and_some_background():
    label = np.zeros((6, 6, 10), np.uint8)
    label[2:4, 2:4, 3:6] = 1
    vol = Volume(np.random.default_rng(0).normal(size=(1, 6, 6, 10)).astype(np.float32), label, "v")
    data = training_slices([vol], (8, 8), background_fraction=0.3, seed=0)
    assert len(data) == 3 + 2 and tuple(data.images.shape) == (5, 1, 8, 8)
    assert int(data.labels.sum()) == 12 and torch.equal(data.case_index, torch.zeros(5, dtype=torch.long))
    assert len(training_slices([vol], (8, 8), background_fraction=0.0)) == 3
    twice = [training_slices([vol], (4, 4), 0.3, seed=5).labels for _ in range(2)]
    assert torch.equal(*twice)
    image, lab = pad_to_multiple(vol, 4)
    assert tuple(image.shape) == (10, 1, 8, 8) and tuple(lab.shape) == (10, 8, 8) and int(lab.sum()) == 12
    with pytest.raises(ValueError, match="patch_size"):
        training_slices([vol], (8,))


def test_two_channel_phantoms_load_as_two_channels(tmp_path):
    root = make_mr_phantom_dataset(tmp_path / "mr", num_cases=3, shape=(16, 16, 8))
    assert make_mr_phantom_dataset(tmp_path / "mr", num_cases=3, shape=(16, 16, 8)) == root  # reused
    volumes = load_volumes(load_datalist(root), 2, slice_size=(8, 8))
    assert volumes[0].image.shape == (2, 8, 8, 8) and set(np.unique(volumes[0].label)) <= {0, 1, 2}
    assert np.allclose(volumes[0].image.mean(axis=(1, 2, 3)), 0.0, atol=1e-4)  # z-score per channel
    with pytest.raises(ValueError, match="in_channels=1"):
        load_volumes(load_datalist(root), 1)


def test_bad_settings_name_their_key(cases):
    with pytest.raises(ValueError, match="patch_size"):
        _trial(cases, spatial_dims=3)
    with pytest.raises(ValueError, match="num_search_folds"):
        _trial(cases, num_folds=7)
    with pytest.raises(ValueError, match="search_folds"):
        _trial(cases).split(3)
    with pytest.raises(ValueError, match="flip_axes"):
        dataclasses.replace(_trial(cases), flip_axes=(2,))(UNET6, 0, 0)
    with pytest.raises(ValueError, match="key 'memory_format'"):
        _trial(cases, memory_format="nhwc")


def test_table_and_history_figure(tmp_path):
    from vnas_monai.spaces.mbnas.compare import reference_encodings, write_table
    from vnas_monai.spaces.mbnas.figures import plot_search_history

    refs = reference_encodings(6, 2)
    assert refs["ResU-Net"].channels == refs["U-Net"].channels and set(refs["ResU-Net"].blocks) == {"residual"}
    rows = [{"method": "U-Net", "dice": 0.8, "hd95_mm": 3.0, "surface_dice": 0.9, "mmacs": 12.5, "params": 1234,
             "architecture": refs["U-Net"].summary()}]
    md, csv_path = write_table(rows, tmp_path, "t")
    line = md.read_text().splitlines()[4]
    assert line.startswith("| U-Net | 80.00 |  | 3.00 | 90.00 | 12.5 | 1,234 |") and line.count(" | ") == 9
    assert csv_path.read_text().splitlines()[1].startswith("U-Net,0.8,,3.0,0.9,12.5,1234,,,")
    png = plot_search_history({"MB-NAS": [(1, "a", 0.4), (2, "b", 0.3), (3, "c", 0.6)]}, tmp_path / "h.png",
                              reference={"start": 0.4})
    assert png.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="empty"):
        plot_search_history({"x": []}, tmp_path / "e.png")
