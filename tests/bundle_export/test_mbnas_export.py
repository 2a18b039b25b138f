"""``python -m vnas_monai export_bundle`` of a retrained MB-NAS network (Bosma et al., SPIE 2022): a tiny 2D network
retrained on phantoms, exported through the CLI, then the bundle's inference (``SliceInferer`` over a volume of
another size and orientation, written on its grid), its weights in the network ``network_def`` builds, its
train.json run for an epoch as MONAI Label's BundleTrainTask runs it, and the export's refusals."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from tests.conftest import BUNDLES, REPO
from vnas_monai.data import load_datalist, make_phantom_dataset
from vnas_monai.spaces.mbnas import MBNASEncoding, unet_encoding
from vnas_monai.spaces.mbnas.network import MBNASNet
from vnas_monai.spaces.mbnas.trial import SliceTrial
from vnas_monai.spaces.mbnas.workflow import retrain

#: a 6-node U-Net with two halvings: the exported network's divisor is 4
UNET6 = unet_encoding(6, max_downsamplings=2)
PATCH = [32, 32]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    """A retraining as bundles/mbnas_spleen/train.json writes it (model.pt, arch.json, settings.json), tiny."""
    work = tmp_path_factory.mktemp("mbnas_export")
    cases = load_datalist(make_phantom_dataset(work / "data", num_cases=4, shape=(32, 32, 8)))
    trial = SliceTrial(cases, num_folds=2, patch_size=PATCH, slice_size=PATCH, intensity_clip=(-100, 240),
                       batch_size=8, epochs=1, steps_per_epoch=2, init_channels=4, device="cpu", precision="fp32")
    train = work / "run" / "fold0" / "train"
    retrain(trial, cases, UNET6, train, class_names=["background", "organ"])
    return {"work": work, "train": train, "cases": cases}


@pytest.fixture(scope="module")
def bundle(run) -> Path:
    """The bundle exported through the fire CLI from the run folder alone, as a user would."""
    out = run["work"] / "mbnas_spleen_bundle"
    cmd = [sys.executable, "-m", "vnas_monai", "export_bundle", "--checkpoint", str(run["train"]),
           "--output_dir", str(out), "--bundle_dir", str(BUNDLES / "mbnas_spleen")]
    res = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300, cwd=run["work"])
    assert res.returncode == 0, res.stderr[-3000:]
    return out


def _parser(bundle: Path, name: str):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / name))
    parser["bundle_root"] = str(bundle)
    return parser


def test_weights_load_into_the_network_def(bundle, run):
    for rel in ("configs/inference.json", "configs/train.json", "configs/metadata.json", "configs/logging.conf",
                "models/model.pt", "models/arch.json", "docs/README.md", "LICENSE"):
        assert (bundle / rel).is_file(), rel
    state = torch.load(bundle / "models" / "model.pt", map_location="cpu", weights_only=True)
    assert all(torch.is_tensor(v) for v in state.values())
    assert MBNASEncoding.load(bundle / "models" / "arch.json") == UNET6
    net = _parser(bundle, "inference.json").get_parsed_content("network_def")
    assert isinstance(net, MBNASNet) and net.spatial_dims == 2 and net.encoding == UNET6 and net.divisor == 4
    net.load_state_dict(state)  # strict
    reference = MBNASNet(UNET6, spatial_dims=2, in_channels=1, out_channels=2, init_channels=4)
    reference.load_state_dict(torch.load(run["train"] / "model.pt", weights_only=True))
    x = torch.randn(2, 1, *PATCH, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(net.eval()(x), reference.eval()(x))
    readme = (bundle / "docs" / "README.md").read_text()
    assert "multiple of 4" in readme and "resized in-plane to [32, 32]" in readme  # the slices' preprocessing
    assert "MB-NAS recipe" in readme and "Adam 0.001" in readme and "SGD" not in readme  # train.json's own recipe
    for path in (bundle / "configs").glob("*.json"):  # self-contained: only @bundle_root
        text = path.read_text()
        assert str(REPO) not in text and str(run["work"]) not in text and "bundles/mbnas" not in text, path


def test_configs_hold_what_monai_label_reads(bundle):
    from monai.bundle import verify_net_in_out
    from monai.inferers import SliceInferer

    from vnas_monai.engine import PrecisionInferer

    infer = _parser(bundle, "inference.json")
    for key in ("network_def", "preprocessing", "postprocessing", "inferer", "device", "bundle_root", "run"):
        assert key in infer, key
    inferer = infer.get_parsed_content("inferer")
    assert isinstance(inferer, PrecisionInferer) and isinstance(inferer.inferer, SliceInferer)
    assert inferer.spatial_dim == 2 and list(inferer.roi_size) == PATCH
    assert infer["slice_size"] == PATCH and infer["intensity_clip"] == [-100, 240] and "spacing" not in infer
    train = _parser(bundle, "train.json")
    for key in ("bundle_root", "device", "network", "network_def", "train#trainer#max_epochs", "train#dataset#data",
                "validate#dataset#data", "train#handlers", "run"):
        assert key in train, key
    assert isinstance(train["train#handlers"], list)
    assert train.get_parsed_content("loss").__class__.__name__ == "DiceLoss"
    assert train.get_parsed_content("optimizer").__class__.__name__ == "Adam"
    meta = json.loads((bundle / "configs" / "metadata.json").read_text())
    image, pred = meta["network_data_format"]["inputs"]["image"], meta["network_data_format"]["outputs"]["pred"]
    assert image["spatial_shape"] == PATCH and image["num_channels"] == 1  # the 2D network's input, as it is
    assert pred["channel_def"] == {"0": "background", "1": "organ"} and pred["num_channels"] == 2
    assert "slice by slice" in meta["description"]
    verify_net_in_out(net_id="network_def", meta_file=str(bundle / "configs" / "metadata.json"),
                      config_file=str(bundle / "configs" / "inference.json"), bundle_root=str(bundle), device="cpu")


def _lps_volume(work: Path) -> Path:
    """A phantom of another in-plane size than the run's slices, in LPS orientation (inference must map back)."""
    root = Path(make_phantom_dataset(work / "other", num_cases=1, shape=(40, 36, 9), seed=3))
    img = nib.load(str(next((root / "imagesTr").glob("*.nii.gz"))))
    ornt = nib.orientations.ornt_transform(nib.orientations.io_orientation(img.affine),
                                           nib.orientations.axcodes2ornt(("L", "P", "S")))
    lps = img.as_reoriented(ornt)
    nib.save(lps, str(work / "case.nii.gz"))
    return work / "case.nii.gz"


def test_inference_writes_the_input_grid(bundle, tmp_path):
    from monai.bundle import ConfigWorkflow

    image = _lps_volume(tmp_path)
    workflow = ConfigWorkflow(config_file=str(bundle / "configs" / "inference.json"), workflow_type=None,
                              bundle_root=str(bundle), images=str(image), output_dir=str(tmp_path / "seg"))
    workflow.initialize()
    workflow.run()
    workflow.finalize()
    seg, src = nib.load(tmp_path / "seg" / "case_seg.nii.gz"), nib.load(image)
    assert seg.shape == src.shape == (40, 36, 9)
    np.testing.assert_allclose(seg.affine, src.affine, atol=1e-4)
    assert set(np.unique(np.asarray(seg.dataobj)).astype(int).tolist()) <= {0, 1}


def test_train_json_runs_an_epoch_with_monai_label_overrides(bundle, run, tmp_path):
    """configs/train.json run as MONAI Label's BundleTrainTask.run_single_gpu runs it (its override keys and its
    CheckpointLoader with strict=False): 2D slices of two cases, validation on a third volume, best model saved."""
    from monai.bundle import run as bundle_run

    root = tmp_path / "bundle"
    shutil.copytree(bundle, root)
    handlers = json.loads((root / "configs" / "train.json").read_text())["train"]["handlers"]
    handlers.insert(0, {"_target_": "CheckpointLoader", "load_path": str(root / "models" / "model.pt"),
                        "load_dict": {"model": "$@network"}, "strict": False})
    before = torch.load(root / "models" / "model.pt", weights_only=True)
    cases = [{"image": c["image"], "label": c["label"]} for c in run["cases"][:3]]
    bundle_run(run_id="run", init_id=None, final_id=None, meta_file=str(root / "configs" / "metadata.json"),
               config_file=str(root / "configs" / "train.json"),
               **{"bundle_root": str(root), "train#trainer#max_epochs": 1, "train#dataset#data": cases[:2],
                  "validate#dataset#data": cases[2:], "device": "cpu", "train#handlers": handlers,
                  "num_workers": 0, "batch_size": 8, "precision": "fp32"})
    after = torch.load(root / "models" / "model.pt", weights_only=True)
    assert after.keys() == before.keys()
    assert any(not torch.equal(before[k], after[k]) for k in before if before[k].is_floating_point())


def _copy_run(train: Path, dst: Path, **changes) -> Path:
    """A copy of the run folder whose settings.json has ``changes`` (``None``: key removed)."""
    shutil.copytree(train, dst)
    settings = json.loads((dst / "settings.json").read_text())
    for key, value in changes.items():
        if value is None:
            settings.pop(key)
        else:
            settings[key] = value
    (dst / "settings.json").write_text(json.dumps(settings))
    return dst


def test_export_refuses_what_does_not_fit(run, tmp_path):
    from vnas_monai.export import export_bundle

    common = dict(bundle_dir=str(BUNDLES / "mbnas_spleen"))
    other = MBNASEncoding(UNET6.channels, ("residual",) * 6, UNET6.kernels, UNET6.skips, 2)
    arch = other.save(tmp_path / "other.json")
    with pytest.raises(ValueError, match="does not fit MBNASNet") as err:  # weights of another encoding
        export_bundle(str(tmp_path / "b1"), str(run["train"]), arch=str(arch), **common)
    assert "refusing to run a partly initialised network" in str(err.value) and len(str(err.value)) < 1500
    state = torch.load(run["train"] / "model.pt", weights_only=True)
    with pytest.raises(ValueError, match="partly initialised"):  # MONAI Label's strict=False load as well
        MBNASNet(other, spatial_dims=2, init_channels=4).load_state_dict(state, strict=False)
    bad = _copy_run(run["train"], tmp_path / "no_dims", spatial_dims=None)
    with pytest.raises(ValueError, match=r"does not record spatial_dims, .*settings\.json"):
        export_bundle(str(tmp_path / "b2"), str(bad), **common)
    bad = _copy_run(run["train"], tmp_path / "no_slice", slice_size=None)
    with pytest.raises(ValueError, match="records no slice_size"):
        export_bundle(str(tmp_path / "b3"), str(bad), **common)
    with pytest.raises(ValueError, match=r"^init_filters=8 contradicts .* init_channels=4"):
        export_bundle(str(tmp_path / "b4"), str(run["train"]), init_filters=8, **common)
    with pytest.raises(ValueError, match="roi_size must be 2 sizes, each a positive multiple of 4"):
        export_bundle(str(tmp_path / "b5"), str(run["train"]), roi_size=[30, 30], **common)
    with pytest.raises(ValueError, match="key 'flip_axes'"):
        export_bundle(str(tmp_path / "b6"), str(run["train"]), flip_axes=[2], **common)
    with pytest.raises(ValueError, match="leave --spacing out"):
        export_bundle(str(tmp_path / "b7"), str(run["train"]), spacing=[1.0, 1.0, 2.5], **common)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(("b", "."))]  # nothing half-written
