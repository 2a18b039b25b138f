"""Fault tolerance of the search bundle: SIGKILL + automatic resume, determinism, atomic checkpoints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from ignite.engine import Engine

from tests.bundles.test_search_bundle import run_search
from tests.conftest import BUNDLES, REPO
from vnas_monai.engine import AtomicCheckpointSaver, latest_checkpoint
from vnas_monai.engine.determinism import SeededDataset, SeededSampler, item_seed

SEARCH = str(BUNDLES / "vnas_nih" / "search.json")
ARGS = [
    "--init_filters", "4", "--roi_size", "[32,32,32]", "--max_epochs", "3", "--arch_warmup_epochs", "1",
    "--epoch_length", "2", "--num_samples", "2", "--num_workers", "0", "--precision", "fp32", "--num_folds", "1",
    "--spacing", "[3.0,3.0,3.0]", "--seed", "5", "--device", "cpu",
]


def _command(dataset: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "monai.bundle", "run", "search", "--config_file", SEARCH, "--dataset_dir",
            str(dataset), "--work_dir", str(out.parent), "--output_dir", str(out), *ARGS]


def _env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")


def _run(cmd: list[str]) -> str:
    done = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-6000:]
    return done.stdout + done.stderr


def _run_and_kill_mid_epoch(cmd: list[str], marker: str, timeout: float = 240) -> str:
    """Start ``cmd``, SIGKILL it as soon as a log line contains ``marker``; returns the log."""
    proc = subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    lines = []
    try:
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if marker in line:
                proc.send_signal(signal.SIGKILL)
                break
        proc.wait()
    finally:
        timer.cancel()
        proc.stdout.close()  # type: ignore[union-attr]
    log = "".join(lines)
    assert proc.returncode == -signal.SIGKILL, f"the search was not killed at {marker!r}:\n{log[-4000:]}"
    return log


def run_killed_and_resumed(
    reference_cmd: list[str], cmd: list[str], out: Path, check_interrupted: Callable[[], None]
) -> None:
    """Run ``reference_cmd`` to the end; run ``cmd`` (3 epochs of 2 iterations, writing to ``out``), SIGKILL it in the
    middle of epoch 2, call ``check_interrupted`` on what it left, then run ``cmd`` again (resume is the default)."""
    _run(reference_cmd)
    # StatsHandler logs every iteration; "Epoch: 2/3, Iter: 1/2" is the middle of epoch 2 (after an architecture
    # step in a search), when checkpoint_epoch=1.pt exists and epoch 2's state lives only in memory
    log = _run_and_kill_mid_epoch(cmd, "Epoch: 2/3, Iter: 1/2")
    assert "Epoch: 2/3, Iter: 2/2" not in log
    assert latest_checkpoint(out).endswith("checkpoint_epoch=1.pt")
    check_interrupted()

    resumed_log = _run(cmd)  # same command: resume is the default
    assert "checkpoint_epoch=1.pt" in resumed_log, "the second run did not resume from the epoch-1 checkpoint"


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_gives_the_uninterrupted_architecture(tmp_path, pancreas_ct_msd):
    reference, killed = tmp_path / "reference" / "search", tmp_path / "killed" / "search"

    def check_interrupted() -> None:
        interrupted = json.loads((killed / "arch.json").read_text())
        assert interrupted["epoch"] == 1 and not interrupted["complete"]

    run_killed_and_resumed(_command(pancreas_ct_msd, reference), _command(pancreas_ct_msd, killed), killed,
                           check_interrupted)
    expected = json.loads((reference / "arch.json").read_text())
    got = json.loads((killed / "arch.json").read_text())
    assert got["complete"] and [h["epoch"] for h in got["history"]] == [1, 2, 3]
    for key in ("encoder", "decoder", "probabilities", "history", "epoch", "iteration"):
        assert got[key] == expected[key], f"{key} differs after the resume"
    uniform = [[round(1 / 3, 6)] * 3] * 16
    assert expected["history"][-1]["encoder"] != uniform, "alpha never moved: the comparison would prove nothing"
    ref_net = torch.load(reference / "checkpoint_final.pt", weights_only=True)["network"]
    got_net = torch.load(killed / "checkpoint_final.pt", weights_only=True)["network"]
    for key, value in ref_net.items():
        assert torch.equal(got_net[key], value), f"network {key} differs after the resume"


@pytest.mark.slow
def test_two_searches_with_the_same_seed_write_the_same_arch_json(tmp_path, pancreas_ct_msd):
    settings = dict(dataset_dir=str(pancreas_ct_msd), num_folds=1, spacing=[3.0, 3.0, 3.0], seed=7)
    first = run_search(tmp_path / "a" / "search", **settings)
    second = run_search(tmp_path / "b" / "search", **settings)
    for key in ("encoder", "decoder", "probabilities", "history"):
        assert first[key] == second[key], key
    other = run_search(tmp_path / "c" / "search", **{**settings, "seed": 8})
    assert other["probabilities"] != first["probabilities"], "the seed has no effect: determinism test is void"


def test_seeded_sampler_splits_one_permutation_between_ranks():
    data = list(range(10))
    one = SeededSampler(data, num_replicas=1, rank=0, seed=3)
    ranks = [SeededSampler(data, num_replicas=2, rank=r, seed=3) for r in (0, 1)]
    for epoch in (1, 2):
        for s in (one, *ranks):
            s.set_epoch(epoch)
        order = list(one)
        assert all(e == epoch for e, _ in order) and sorted(i for _, i in order) == data
        assert [i for _, i in order][0::2] == [i for _, i in ranks[0]]
        assert [i for _, i in order][1::2] == [i for _, i in ranks[1]]
    one.set_epoch(1)
    first = list(one)
    one.set_epoch(2)
    assert list(one) != first
    with pytest.raises(ValueError, match="empty"):
        SeededSampler([], num_replicas=1, rank=0)


def test_seeded_dataset_draws_depend_only_on_seed_epoch_and_index():
    from monai.transforms import RandSpatialCropd

    class _Data(torch.utils.data.Dataset):
        transform = RandSpatialCropd(keys="x", roi_size=[2, 2, 2], random_size=False)

        def __len__(self):
            return 4

        def __getitem__(self, i):
            return self.transform({"x": torch.arange(512.0).reshape(1, 8, 8, 8) + 1000 * i})["x"]

    data = SeededDataset(_Data(), seed=1)
    a = data[(2, 3)]
    data[(5, 1)], data[(2, 0)]  # other draws in between do not matter
    assert torch.equal(data[(2, 3)], a)
    assert not all(torch.equal(data[(e, 3)], a) for e in range(3, 8))
    assert item_seed(1, 0, 2, 3) != item_seed(1, 1, 2, 3)


def _engine_with_saver(out: Path, n_saved: int | None = 1) -> Engine:
    engine = Engine(lambda e, b: None)
    save_dict = {"net": torch.nn.Linear(3, 2), "opt_like": torch.nn.Linear(2, 1)}
    AtomicCheckpointSaver(str(out), save_dict, save_interval=1, epoch_level=True, n_saved=n_saved).attach(engine)
    return engine


def test_atomic_saver_keeps_the_previous_checkpoint_until_the_next_is_complete(tmp_path, monkeypatch):
    real_save, calls = torch.save, []

    def dying_save(obj, f, *args, **kwargs):  # the second checkpoint is cut short, then the process "dies"
        calls.append(1)
        real_save(obj, f, *args, **kwargs)
        if len(calls) == 2:
            f.truncate(100)
            raise KeyboardInterrupt("killed while saving")

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        _engine_with_saver(tmp_path).run([0], max_epochs=2)
    # MONAI's CheckpointSaver (n_saved=1) deletes epoch 1 before writing epoch 2, and writes in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_epoch=1.pt"], "partial file left behind"
    assert set(torch.load(tmp_path / "checkpoint_epoch=1.pt", weights_only=True)) == {"net", "opt_like"}
    monkeypatch.undo()

    fresh = tmp_path / "fresh"
    _engine_with_saver(fresh).run([0], max_epochs=3)
    assert sorted(p.name for p in fresh.iterdir()) == ["checkpoint_epoch=3.pt"]  # n_saved=1 still retires old ones
    assert oct((fresh / "checkpoint_epoch=3.pt").stat().st_mode & 0o044) == oct(0o044 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_resume_skips_a_truncated_newest_checkpoint(tmp_path):
    _engine_with_saver(tmp_path, n_saved=None).run([0], max_epochs=2)
    newest = tmp_path / "checkpoint_epoch=2.pt"
    newest.write_bytes(newest.read_bytes()[:200])  # what MONAI's non-atomic saver could leave
    os.utime(newest, (time.time() + 5, time.time() + 5))
    assert latest_checkpoint(tmp_path).endswith("checkpoint_epoch=1.pt")
