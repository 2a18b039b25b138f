"""An exported bundle served by a real MONAI Label 0.8.5 server (``monaibundle`` sample app) on 127.0.0.1.

The server runs in its own Python environment (torch 2.14.1 + torchvision 0.29.1, MONAI Label without sam2), built
once by ``tools/monailabel_env.sh`` into ``$VNAS_MONAILABEL_ENV`` (default ``~/.cache/vnas_monai/monailabel-0.8.5``;
about 8 minutes and 5.5 GB the first time, seconds afterwards). The tests are skipped, saying why, only when that
environment cannot be built. The server is always stopped at the end (its whole process group).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from vnas_monai.export import export_bundle
from vnas_monai.spaces.vnas.encoding import Architecture

from .test_export import LABELS, ROI, tiny_weights

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
MODEL = "vnas_hippocampus"
CASES = ("hippocampus_001", "hippocampus_003")
ENV_BUILD_TIMEOUT = 2400
SERVER_START_TIMEOUT = 300
REQUEST_TIMEOUT = 600


@pytest.fixture(scope="module")
def monailabel_python() -> Path:
    """The MONAI Label environment's python, built if absent (skip, with the build's output, if it cannot be)."""
    script = REPO / "tools" / "monailabel_env.sh"
    try:
        res = subprocess.run(
            ["bash", str(script)], capture_output=True, text=True, timeout=ENV_BUILD_TIMEOUT, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        pytest.skip(f"building the MONAI Label environment took over {ENV_BUILD_TIMEOUT} s ({script})")
    if res.returncode != 0:
        errors = "\n".join(line for line in res.stderr.splitlines() if not line.startswith("WARNING: Location"))
        pytest.skip(f"cannot build the MONAI Label 0.8.5 environment with {script}: {errors[-1500:]}")
    return Path(res.stdout.strip().splitlines()[-1])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(url: str, method: str = "GET", body: bytes | None = None, timeout: float = REQUEST_TIMEOUT):
    headers = {"Content-Type": "application/json"} if body is not None else {}
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.status, resp.read()


class Server:
    def __init__(self, url: str, proc: subprocess.Popen, log: Path, app: Path, studies: Path):
        self.url, self.proc, self.log, self.app, self.studies = url, proc, log, app, studies

    def log_tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:]


@pytest.fixture(scope="module")
def server(monailabel_python, hippocampus_dir, tmp_path_factory):
    """monaibundle app with the exported bundle under model/, two real MRI cases (with labels) as studies."""
    work = tmp_path_factory.mktemp("monailabel")
    env_dir = monailabel_python.parent.parent
    app = work / "app"
    shutil.copytree(env_dir / "monailabel" / "sample-apps" / "monaibundle", app)
    ckpt = tiny_weights(work / "weights.pt")
    export_bundle(
        str(app / "model" / MODEL),
        str(ckpt),
        arch=str(Architecture.preset("nih").save(work / "arch.json")),
        bundle_dir=str(REPO / "bundles" / "vnas_nih"),
        labels=LABELS,
        init_filters=4,
        intensity_clip=False,
        roi_size=ROI,
        infer_roi_size=ROI,
        modality="MR",
        task="Hippocampus segmentation in MRI",
        data_source="MSD Task04 Hippocampus",
    )
    studies = work / "studies"
    (studies / "labels" / "final").mkdir(parents=True)
    for case in CASES:
        shutil.copy(hippocampus_dir / "imagesTr" / f"{case}.nii.gz", studies)
        shutil.copy(hippocampus_dir / "labelsTr" / f"{case}.nii.gz", studies / "labels" / "final")

    port = _free_port()
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "MONAI_LABEL_SESSION_PATH": str(work / "sessions"),
        "MONAI_LABEL_TRACKING_ENABLED": "false",
        "PYTHONPATH": "",
    }
    cmd = [
        str(monailabel_python), "-m", "monailabel.main", "start_server", "--app", str(app), "--studies", str(studies),
        "--host", "127.0.0.1", "--port", str(port),
        "--conf", "models", MODEL, "--conf", "zoo_source", "local", "--conf", "sam2", "false",
        "--conf", "preload", "false",
    ]  # fmt: skip
    log = work / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=work, env=env,
            start_new_session=True,
        )  # fmt: skip
    srv = Server(f"http://127.0.0.1:{port}", proc, log, app, studies)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"MONAI Label server exited with {proc.returncode}:\n{srv.log_tail()}")
            try:
                if _request(srv.url + "/info/", timeout=10)[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError, socket.timeout):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"MONAI Label server not up after {SERVER_START_TIMEOUT} s:\n{srv.log_tail()}")
            time.sleep(2)
        yield srv
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server's process group (it was started in a session of its own), escalating to SIGKILL."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _infer(server: Server, image: str):
    status, body = _request(f"{server.url}/infer/{MODEL}?image={image}&output=image", method="POST", body=b"{}")
    return status, body


def _load_nifti(data: bytes):
    import nibabel as nib

    return nib.Nifti1Image.from_bytes(_gunzip(data))


def _gunzip(data: bytes) -> bytes:
    import gzip

    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def test_info_lists_the_bundle(server):
    status, body = _request(server.url + "/info/")
    assert status == 200
    info = json.loads(body)
    model = info["models"][MODEL]
    assert model["type"] == "segmentation"
    assert model["labels"] == {"anterior": 1, "posterior": 2}
    assert model["dimension"] == 3
    assert model["version"] == "0.1.0"
    assert MODEL in info["trainers"]


def test_infer_returns_a_segmentation_of_the_image(server, hippocampus_dir):
    import nibabel as nib

    status, body = _infer(server, CASES[0])
    assert status == 200, server.log_tail()
    seg = _load_nifti(body)
    src = nib.load(str(hippocampus_dir / "imagesTr" / f"{CASES[0]}.nii.gz"))
    assert seg.shape == src.shape
    np.testing.assert_allclose(seg.affine, src.affine, atol=1e-4)
    values = set(np.unique(np.asarray(seg.dataobj)).astype(int).tolist())
    assert values <= {0, 1, 2}, values


def test_train_through_bundle_train_task(server):
    """MONAI Label's BundleTrainTask runs the exported configs/train.json (1 epoch, 1 train + 1 val case) and the
    server then infers with the weights it saved (reloaded because models/model.pt changed)."""
    model_pt = server.app / "model" / MODEL / "models" / "model.pt"
    before = torch.load(model_pt, weights_only=True)
    params = {"max_epochs": 1, "val_split": 0.5, "device": "cpu", "multi_gpu": False, "tracking": "None"}
    status, body = _request(
        f"{server.url}/train/{MODEL}?run_sync=true", method="POST", body=json.dumps(params).encode()
    )
    assert status == 200, server.log_tail()
    log = server.log_tail(20000)
    assert "Training Finished" in log and "val_mean_dice" in log, log[-4000:]
    after = torch.load(model_pt, weights_only=True)
    assert after.keys() == before.keys()
    assert any(not torch.equal(before[k], after[k]) for k in before if before[k].is_floating_point())
    status, body = _infer(server, CASES[1])
    assert status == 200, server.log_tail()
    assert set(np.unique(np.asarray(_load_nifti(body).dataobj)).astype(int).tolist()) <= {0, 1, 2}


def test_server_refuses_weights_of_another_architecture(server, tmp_path):
    """MONAI Label loads models/model.pt with strict=False; the exported network refuses wrong weights itself, so
    the request fails loudly instead of segmenting with a half-initialised network."""
    model_pt = server.app / "model" / MODEL / "models" / "model.pt"
    tiny_weights(tmp_path / "other.pt", arch="3d")
    model_pt.write_bytes((tmp_path / "other.pt").read_bytes())
    os.utime(model_pt, (time.time() + 5, time.time() + 5))  # a new mtime: the server reloads the weights
    with pytest.raises(urllib.error.HTTPError) as err:
        _infer(server, CASES[0])
    assert err.value.code >= 400
    body = err.value.read().decode(errors="replace")
    deadline = time.monotonic() + 30  # the server logs the traceback after answering
    while "these weights belong to architecture" not in body + server.log_tail(50000) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert "these weights belong to architecture" in body + server.log_tail(50000), server.log_tail()
