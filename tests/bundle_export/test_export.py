"""``python -m vnas_monai export_bundle``: the exported bundle's layout, metadata and configs, and MONAI's bundle tools
on it (``monai.bundle run`` on a real MRI volume, verify_net_in_out, ckpt_export, onnx_export)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vnas_monai.spaces.vnas import VNASNet
from vnas_monai.spaces.vnas.encoding import Architecture

REPO = Path(__file__).resolve().parents[2]
LABELS = {"0": "background", "1": "anterior", "2": "posterior"}
ROI = [32, 32, 32]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def tiny_weights(path: Path, arch: str = "nih", seed: int = 0) -> Path:
    """Untrained weights of a tiny VNASNet (stem width 4, 3 classes): shapes and labels are checked, not accuracy."""
    torch.manual_seed(seed)
    net = VNASNet(3, in_channels=1, out_channels=3, architecture=arch, init_filters=4)
    torch.save(net.state_dict(), path)
    return path


def export_args(out: Path, ckpt: Path, arch: Path) -> list[str]:
    """CLI arguments exporting a hippocampus (MRI, 3 labels) bundle from bundles/vnas_nih's settings."""
    return [
        "--bundle_dir", str(REPO / "bundles" / "vnas_nih"), "--arch", str(arch), "--checkpoint", str(ckpt),
        "--output_dir", str(out), "--labels", json.dumps(LABELS), "--init_filters", "4", "--intensity_clip", "False",
        "--roi_size", json.dumps(ROI), "--infer_roi_size", json.dumps(ROI), "--flip_axes", "[0]", "--modality", "MR",
        "--name", "V-NAS hippocampus (test)",
        "--task", "Hippocampus segmentation in MRI", "--data_source", "MSD Task04 Hippocampus",
        "--data_licence", "CC BY-SA 4.0",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """A bundle exported through the fire CLI, as a user would."""
    work = tmp_path_factory.mktemp("export")
    ckpt = tiny_weights(work / "trained.pt")
    arch = Architecture.preset("nih").save(work / "arch.json")
    out = work / "vnas_hippocampus"
    cmd = [sys.executable, "-m", "vnas_monai", "export_bundle", *export_args(out, ckpt, Path(arch))]
    res = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600, cwd=work)
    assert res.returncode == 0, res.stderr[-3000:]
    return out


def mri_volume(src: Path, dst: Path) -> Path:
    """A copy of a real MRI volume in LPS orientation (not RAS: inference must map the result back)."""
    import nibabel as nib

    img = nib.load(str(src))
    ornt = nib.orientations.ornt_transform(
        nib.orientations.io_orientation(img.affine), nib.orientations.axcodes2ornt(("L", "P", "S"))
    )
    lps = img.as_reoriented(ornt)
    assert nib.aff2axcodes(lps.affine) == ("L", "P", "S")
    nib.save(lps, str(dst))
    return dst


def test_layout(bundle):
    for rel in (
        "configs/inference.json",
        "configs/train.json",
        "configs/metadata.json",
        "configs/logging.conf",
        "models/model.pt",
        "models/arch.json",
        "docs/README.md",
        "LICENSE",
    ):
        assert (bundle / rel).is_file(), rel
    state = torch.load(bundle / "models" / "model.pt", map_location="cpu", weights_only=True)
    assert all(torch.is_tensor(v) for v in state.values())
    assert Architecture.load(bundle / "models" / "arch.json") == Architecture.preset("nih")
    assert state["arch_code"].tolist() == Architecture.preset("nih").codes
    assert "Apache License" in (bundle / "LICENSE").read_text()
    readme = (bundle / "docs" / "README.md").read_text()
    for section in ("## Data", "## Training", "## Results", "## Licence", "CC BY-SA 4.0", "MONAI Label"):
        assert section in readme, section


def test_self_contained(bundle):
    """No path of this repository or of the export's work folder in any config: only @bundle_root."""
    for path in (bundle / "configs").glob("*.json"):
        text = path.read_text()
        assert str(REPO) not in text and str(bundle) not in text and "bundles/vnas_nih" not in text, path
    for name in ("inference.json", "train.json"):
        config = json.loads((bundle / "configs" / name).read_text())
        assert config["bundle_root"] == "."
        assert config["device"] == "auto"


def test_metadata(bundle):
    meta = json.loads((bundle / "configs" / "metadata.json").read_text())
    for key in (
        "version",
        "changelog",
        "monai_version",
        "pytorch_version",
        "numpy_version",
        "required_packages_version",
        "task",
        "description",
        "authors",
        "copyright",
        "network_data_format",
    ):
        assert meta.get(key), key
    import monai

    assert meta["monai_version"] == monai.__version__
    assert meta["version"] in meta["changelog"]
    assert "vnas_monai" in meta["required_packages_version"]
    image = meta["network_data_format"]["inputs"]["image"]
    pred = meta["network_data_format"]["outputs"]["pred"]
    assert image["num_channels"] == 1 and image["spatial_shape"] == ROI and image["modality"] == "MR"
    assert pred["num_channels"] == 3 and pred["channel_def"] == LABELS
    assert meta["task"] == "Hippocampus segmentation in MRI"


def test_configs_parse_and_instantiate(bundle):
    from monai.bundle import ConfigParser
    from monai.inferers import SlidingWindowInferer
    from monai.transforms import Compose, RandFlipd

    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    parser["bundle_root"] = str(bundle)
    for key in ("network_def", "preprocessing", "postprocessing", "inferer", "device", "bundle_root", "run"):
        assert key in parser, key
    net = parser.get_parsed_content("network_def")
    assert isinstance(net, VNASNet) and net.architecture == Architecture.preset("nih")
    assert isinstance(parser.get_parsed_content("preprocessing"), Compose)
    assert isinstance(parser.get_parsed_content("postprocessing"), Compose)
    inferer = parser.get_parsed_content("inferer")
    inferer = getattr(inferer, "inferer", inferer)  # PrecisionInferer wraps MONAI's sliding window
    assert isinstance(inferer, SlidingWindowInferer) and list(inferer.roi_size) == ROI
    assert parser.get_parsed_content("run_device") == torch.device("cuda" if torch.cuda.is_available() else "cpu")

    train = ConfigParser()
    train.read_config(str(bundle / "configs" / "train.json"))
    # the keys MONAI Label's BundleTrainTask overrides or references
    for key in (
        "bundle_root",
        "device",
        "network",
        "network_def",
        "train#trainer#max_epochs",
        "train#dataset#data",
        "validate#dataset#data",
        "train#handlers",
        "run",
    ):
        assert key in train, key
    assert isinstance(train["train#handlers"], list)
    # flips as given at export (a y flip would swap the hippocampus' anterior and posterior labels)
    train["bundle_root"] = str(bundle)
    flips = [t for t in train.get_parsed_content("train#augmentation") if isinstance(t, RandFlipd)]
    assert train["flip_axes"] == [0] and [t.flipper.spatial_axis for t in flips] == [0]


def test_monai_bundle_run_inference(bundle, hippocampus_dir, tmp_path):
    """``python -m monai.bundle run --config_file OUT/configs/inference.json`` on a real MRI volume (LPS copy)."""
    import nibabel as nib

    image = mri_volume(hippocampus_dir / "imagesTr" / "hippocampus_001.nii.gz", tmp_path / "case.nii.gz")
    out = tmp_path / "seg"
    cmd = [
        sys.executable, "-m", "monai.bundle", "run", "--config_file", str(bundle / "configs" / "inference.json"),
        "--bundle_root", str(bundle), "--images", str(image), "--output_dir", str(out),
    ]  # fmt: skip
    res = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    seg_path = out / "case_seg.nii.gz"
    assert seg_path.is_file(), list(out.iterdir())
    src, seg = nib.load(str(image)), nib.load(str(seg_path))
    assert seg.shape == src.shape
    np.testing.assert_allclose(seg.affine, src.affine, atol=1e-4)
    assert set(np.unique(np.asarray(seg.dataobj)).tolist()) <= {0, 1, 2}


def test_image_datalist(tmp_path):
    from vnas_monai.bundle.export import image_datalist

    (tmp_path / "a.nii.gz").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    assert image_datalist(tmp_path) == [{"image": str(tmp_path / "a.nii.gz")}]
    assert image_datalist(str(tmp_path / "a.nii.gz")) == [{"image": str(tmp_path / "a.nii.gz")}]
    with pytest.raises(FileNotFoundError):
        image_datalist(tmp_path / "missing.nii.gz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image"):
        image_datalist(tmp_path / "empty")
    # a folder of DICOM slices (any file names) is one series, as in the pipeline's inference bundle
    series = tmp_path / "ct" / "series"
    series.mkdir(parents=True)
    for i in range(3):
        (series / f"IM{i:04d}").write_bytes(b"")
    assert image_datalist(series) == [{"image": str(series)}]
    assert image_datalist(tmp_path / "ct") == [{"image": str(series)}]
    (tmp_path / "ct" / "series.nii.gz").write_bytes(b"")
    with pytest.raises(ValueError, match="both be written as case 'series'"):
        image_datalist(tmp_path / "ct")


def test_verify_net_in_out(bundle):
    from monai.bundle import verify_net_in_out

    verify_net_in_out(
        net_id="network_def",
        meta_file=str(bundle / "configs" / "metadata.json"),
        config_file=str(bundle / "configs" / "inference.json"),
        bundle_root=str(bundle),
        device="cpu",
    )


def _reference(bundle: Path) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    net = VNASNet(3, 1, 3, architecture=bundle / "models" / "arch.json", init_filters=4)
    net.load_state_dict(torch.load(bundle / "models" / "model.pt", weights_only=True))
    net.eval()
    x = torch.randn(1, 1, *ROI, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return net, x, net(x)


def _export_args(bundle: Path, filepath: Path) -> dict:
    """Arguments of MONAI's ``ckpt_export`` / ``onnx_export`` for the exported bundle, traced at ``ROI``."""
    return dict(
        net_id="network_def",
        filepath=str(filepath),
        ckpt_file=str(bundle / "models" / "model.pt"),
        meta_file=str(bundle / "configs" / "metadata.json"),
        config_file=str(bundle / "configs" / "inference.json"),
        bundle_root=str(bundle),
        use_trace=True,
        input_shape=[1, 1, *ROI],
    )


def test_ckpt_export_torchscript(bundle, tmp_path):
    """TorchScript by tracing (``--use_trace True``): the network's runtime conv dispatch is not scriptable."""
    from monai.bundle import ckpt_export

    ts = tmp_path / "model.ts"
    ckpt_export(**_export_args(bundle, ts))
    _, x, ref = _reference(bundle)
    with torch.no_grad():
        out = torch.jit.load(str(ts), map_location="cpu")(x)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


def test_onnx_export(bundle, tmp_path):
    pytest.importorskip("onnx", reason="onnx is not installed (optional; `pip install onnx` enables this check)")
    from monai.bundle import onnx_export

    onnx_file = tmp_path / "model.onnx"
    onnx_export(
        **_export_args(bundle, onnx_file),
        converter_kwargs={"dynamo": False},  # the TorchScript-based exporter: no onnxscript needed
        # plain NCDHW conv3d: ONNX has no memory-format ops (the CPU fast path computes channels-last)
        **{"network_def#conv_impl": "conv3d", "network_def#memory_format": "preserve"},
    )
    import onnx
    import onnxruntime

    model = onnx.load(str(onnx_file))
    onnx.checker.check_model(model)
    assert [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim] == [1, 3, *ROI]
    # onnxruntime computes what the PyTorch network computes
    _, x, ref = _reference(bundle)
    session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    out = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    np.testing.assert_allclose(out, ref.numpy(), rtol=1e-3, atol=1e-3)


def test_refuses_other_architecture(bundle, tmp_path):
    """MONAI Label loads ``model.pt`` with ``strict=False`` (and BundleTrainTask through CheckpointLoader with
    ``strict=False``): the exported network must refuse another architecture's weights itself."""
    from ignite.engine import Engine
    from monai.bundle import ConfigParser
    from monai.handlers import CheckpointLoader

    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    parser["bundle_root"] = str(bundle)
    net = parser.get_parsed_content("network_def")
    other = tiny_weights(tmp_path / "other.pt", arch="3d")
    state = torch.load(other, weights_only=True)
    with pytest.raises(ValueError, match="architecture"):
        net.load_state_dict(state, strict=False)
    engine = Engine(lambda e, b: None)
    CheckpointLoader(load_path=str(other), load_dict={"model": net}, strict=False).attach(engine)
    with pytest.raises(ValueError, match="architecture"):
        engine.run([0], max_epochs=1)
    # the same weights without their arch_code are refused as well (missing tensors of this architecture)
    state.pop("arch_code")
    with pytest.raises(ValueError, match="refusing"):
        net.load_state_dict(state, strict=False)


def test_export_checks_weights(tmp_path, monkeypatch):
    from vnas_monai.export import export_bundle

    ckpt = tiny_weights(tmp_path / "nih.pt")
    common = dict(
        bundle_dir=str(REPO / "bundles" / "vnas_nih"), labels=LABELS, init_filters=4, roi_size=ROI, infer_roi_size=ROI
    )
    with pytest.raises(ValueError, match="does not fit"):
        export_bundle(str(tmp_path / "b1"), str(ckpt), arch="3d", **common)
    # the width is read from the weights: another one is refused in one line naming both values
    with pytest.raises(ValueError, match=r"^init_filters=8 contradicts the training run of .*init_filters=4"):
        export_bundle(str(tmp_path / "b2"), str(ckpt), arch="nih", **{**common, "init_filters": 8})
    with pytest.raises(ValueError, match="multiple of 32"):
        export_bundle(str(tmp_path / "b3"), str(ckpt), **{**common, "roi_size": [48, 48, 48]})
    # arch from the checkpoint's arch_code; a MONAI checkpoint dict is accepted
    torch.save({"network": torch.load(ckpt, weights_only=True), "epoch": torch.tensor(3)}, tmp_path / "full.pt")
    out = Path(export_bundle(str(tmp_path / "b4"), str(tmp_path / "full.pt"), **common))
    assert Architecture.load(out / "models" / "arch.json") == Architecture.preset("nih")
    meta = json.loads((out / "configs" / "metadata.json").read_text())
    assert meta["network_data_format"]["inputs"]["image"]["modality"] == "CT"  # the source bundle's
    assert json.loads((out / "configs" / "inference.json").read_text())["intensity_clip"] == [-100, 240]
    assert json.loads((out / "configs" / "train.json").read_text())["flip_axes"] == [0, 1]  # the source bundle's
    for bad in ([3], ["y"], [True]):
        with pytest.raises(ValueError, match="flip_axes must be spatial axes"):
            export_bundle(str(tmp_path / "b5"), str(ckpt), flip_axes=bad, **common)
    assert not (tmp_path / "b5").exists()
    with pytest.raises(FileExistsError):
        export_bundle(str(out), str(ckpt), **common)

    # a failed --overwrite export keeps the previous bundle whole and leaves no partial folder behind
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    monkeypatch.setattr("vnas_monai.export.configs.train_config", lambda settings, network: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        export_bundle(str(out), str(ckpt), overwrite=True, **common)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_train_config_runs_with_monailabel_overrides(bundle, hippocampus_dir, tmp_path):
    """configs/train.json run as MONAI Label's BundleTrainTask.run_single_gpu does (same override keys)."""
    from monai.bundle import run

    root = tmp_path / "bundle"
    shutil.copytree(bundle, root)
    cases = [
        {"image": str(hippocampus_dir / "imagesTr" / name), "label": str(hippocampus_dir / "labelsTr" / name)}
        for name in ("hippocampus_001.nii.gz", "hippocampus_003.nii.gz")
    ]
    handlers = json.loads((root / "configs" / "train.json").read_text())["train"]["handlers"]
    handlers.insert(
        0,
        {
            "_target_": "CheckpointLoader",
            "load_path": str(root / "models" / "model.pt"),
            "load_dict": {"model": "$@network"},
            "strict": False,
        },
    )
    before = torch.load(root / "models" / "model.pt", weights_only=True)
    run(
        run_id="run",
        init_id=None,
        final_id=None,
        meta_file=str(root / "configs" / "metadata.json"),
        config_file=str(root / "configs" / "train.json"),
        **{
            "bundle_root": str(root),
            "train#trainer#max_epochs": 1,
            "train#dataset#data": cases[:1],
            "validate#dataset#data": cases[1:],
            "device": "cpu",
            "train#handlers": handlers,
            "num_workers": 0,
        },
    )
    after = torch.load(root / "models" / "model.pt", weights_only=True)
    assert after.keys() == before.keys()
    assert any(not torch.equal(before[k], after[k]) for k in before if before[k].is_floating_point())
