"""Tests of the search handlers: arch.json/PNG/TensorBoard logging, checkpoints (weights_only) and resume."""

from __future__ import annotations

import json
import logging
import os

import pytest
import torch
from ignite.engine import Events
from monai.handlers import CheckpointLoader, CheckpointSaver, LrScheduleHandler

from vnas_monai.engine import (
    ArchitectureLogger,
    ResumeCheckpointLoader,
    latest_checkpoint,
    num_iterations,
    plot_probability_history,
    search_losses,
)
from vnas_monai.spaces.vnas.encoding import DECIDED_MARGIN, Architecture, cell_margins

from .test_search import make_trainer


def _search(tmp_path, max_epochs, logger_first=True, resume=None, **logger_kw):
    """Trainer + poly LR + ArchitectureLogger + CheckpointSaver, wired as the search bundle does."""
    trainer = make_trainer(max_epochs=max_epochs, warmup=1, handlers=[])
    net = trainer.network
    # total_iters of the whole search, however it is split into runs
    sched = torch.optim.lr_scheduler.PolynomialLR(trainer.optimizer, total_iters=num_iterations(4, epoch_length=2),
                                                  power=0.9)
    logger = ArchitectureLogger(tmp_path / "out", **logger_kw)
    save_dict = {
        "network": net, "optimizer": trainer.optimizer, "arch_optimizer": trainer.arch_optimizer,
        "lr_scheduler": sched, "trainer": trainer, "arch_logger": logger,
    }
    saver = CheckpointSaver(str(tmp_path / "ckpt"), save_dict, save_final=True, save_interval=1, epoch_level=True,
                            n_saved=1)
    handlers = [LrScheduleHandler(sched, print_lr=False, epoch_level=False)]
    handlers += [logger, saver] if logger_first else [saver, logger]
    if resume is not None:
        handlers.append(resume(save_dict))
    for h in handlers:
        h.attach(trainer)
    return trainer, logger, sched


def test_arch_json_png_and_history_per_epoch(tmp_path, monkeypatch):
    replaced: list[str] = []
    real_replace = os.replace

    def spy_replace(src, dst):
        replaced.append(os.path.basename(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy_replace)  # arch.json and the PNG must arrive by rename (atomic)
    trainer, logger, _ = _search(tmp_path, max_epochs=2, tensorboard_dir=tmp_path / "tb")
    out = tmp_path / "out"
    seen: list[dict] = []
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda _: seen.append(Architecture.load(out / "arch.json").meta))
    trainer.run()

    assert [len(d["history"]) for d in seen] == [1, 2]
    assert [d["epoch"] for d in seen] == [1, 2] and [d["complete"] for d in seen] == [False, True]
    final = json.loads((out / "arch.json").read_text())
    assert final["complete"] is True and final["iteration"] == 4 and final["arch_warmup_epochs"] == 1
    assert final["mix"] is False
    assert [h["epoch"] for h in final["history"]] == [1, 2]
    assert len(final["history"][0]["encoder"]) == 16 and len(final["history"][0]["decoder"]) == 5
    # warm-up epoch 1 keeps the initial probabilities, the architecture moves afterwards
    assert final["history"][0]["encoder"] != final["history"][1]["encoder"]
    arch = Architecture.load(out / "arch.json")
    assert arch == trainer.network.derive()
    assert arch.probabilities["encoder"] == final["probabilities"]["encoder"]
    assert final["paper"]["encoder"].count(",") == 3
    assert (out / "arch_probabilities.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "arch.json" in replaced and "arch_probabilities.png" in replaced
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    assert logger.history == final["history"]
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))


def test_margins_decision_and_warmup_log(tmp_path, caplog):
    """arch.json reports each cell's margin and whether the search decided; the warm-up epoch's uniform argmax is
    not logged as an architecture, and an undecided final architecture is warned about."""
    trainer, logger, _ = _search(tmp_path, max_epochs=2, name="vnas-test-logger")
    with caplog.at_level(logging.INFO, logger="vnas-test-logger"):
        trainer.run()
    final = json.loads((tmp_path / "out" / "arch.json").read_text())
    arch = Architecture.load(tmp_path / "out" / "arch.json")
    assert final["margins"]["encoder"] == pytest.approx(arch.margins()["encoder"], abs=1e-6)
    assert len(final["margins"]["encoder"]) == 16 and len(final["margins"]["decoder"]) == 5
    decision = final["decision"]
    assert decision["threshold"] == DECIDED_MARGIN and decision["decided"] is (decision["median_margin"] >= 0.2)
    text = caplog.text
    assert "epoch 1: not searched yet (weight warm-up" in text and "epoch 1 (0=2D" not in text
    assert "median cell margin" in text
    # two architecture steps cannot decide 21 cells
    assert not decision["decided"] and "is not decided" in text


def test_cell_margins_and_decision():
    probs = {"encoder": [[0.6, 0.3, 0.1]] * 16, "decoder": [[0.34, 0.33, 0.33]] * 5}
    arch = Architecture([0] * 16, [0] * 5, probs)
    assert cell_margins([[0.2, 0.7, 0.1], [1 / 3] * 3]) == pytest.approx([0.5, 0.0])
    decision = arch.decision()
    assert decision["median_margin"] == pytest.approx(0.3) and decision["min_margin"] == pytest.approx(0.01)
    assert decision["decided"] and not arch.decision(threshold=0.5)["decided"]
    assert Architecture.preset("nih").decision() is None and Architecture.preset("nih").margins() is None


def test_log_every_epochs_still_records_every_epoch(tmp_path):
    trainer, logger, _ = _search(tmp_path, max_epochs=3, log_every_epochs=2, png=None)
    path = tmp_path / "out" / "arch.json"
    writes: list[int] = []
    trainer.add_event_handler(
        Events.EPOCH_COMPLETED, lambda _: writes.append(json.loads(path.read_text())["epoch"] if path.exists() else 0)
    )
    trainer.run()
    assert writes == [0, 2, 2]  # files at epoch 2, then at COMPLETED
    final = json.loads((tmp_path / "out" / "arch.json").read_text())
    assert final["epoch"] == 3 and [h["epoch"] for h in final["history"]] == [1, 2, 3]
    assert not (tmp_path / "out" / "arch_probabilities.png").exists()


@pytest.mark.parametrize("logger_first", [True, False])
def test_checkpoint_weights_only_and_resume(tmp_path, logger_first):
    # reference: 4 uninterrupted epochs
    ref, ref_logger, ref_sched = _search(tmp_path / "ref", max_epochs=4, png=None)
    ref.run()

    # interrupted run: 2 epochs, then a fresh process-like set of objects resumes to 4
    first, _, _ = _search(tmp_path / "run", max_epochs=2, logger_first=logger_first, png=None)
    first.run()
    ckpt = latest_checkpoint(tmp_path / "run" / "ckpt")
    assert ckpt is not None
    state = torch.load(ckpt, weights_only=True)  # what MONAI CheckpointLoader and MONAI Label use
    assert set(state) == {"network", "optimizer", "arch_optimizer", "lr_scheduler", "trainer", "arch_logger"}
    assert [h["epoch"] for h in state["arch_logger"]["history"]] == [1, 2]  # whatever the handler order
    assert state["trainer"]["iteration"] == 4 and state["trainer"]["arch_iteration"] == 2
    assert "alpha" in state["network"] and "beta" in state["network"]

    resumed, logger, sched = _search(
        tmp_path / "run", max_epochs=4, logger_first=logger_first, png=None,
        resume=lambda d: ResumeCheckpointLoader(tmp_path / "run" / "ckpt", d),
    )
    epochs_run: list[int] = []
    resumed.add_event_handler(Events.EPOCH_STARTED, lambda e: epochs_run.append(e.state.epoch))
    resumed.run()
    assert epochs_run == [3, 4]
    assert resumed.state.epoch == 4 and resumed.state.iteration == 8 and resumed.state.arch_iteration == 6
    assert [h["epoch"] for h in logger.history] == [1, 2, 3, 4]
    final = json.loads((tmp_path / "run" / "out" / "arch.json").read_text())
    assert [h["epoch"] for h in final["history"]] == [1, 2, 3, 4] and final["complete"]
    # optimizer (momentum, Adam moments), LR schedule and weights continue exactly as without the interruption
    assert sched.last_epoch == ref_sched.last_epoch == 8
    assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(ref.optimizer.param_groups[0]["lr"])
    assert resumed.arch_optimizer.state_dict()["state"][0]["step"] == 6
    for a, b in zip(resumed.network.state_dict().values(), ref.network.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-5)
    for a, b in zip(logger.history, ref_logger.history):
        assert torch.allclose(torch.tensor(a["encoder"]), torch.tensor(b["encoder"]), atol=1e-5)


def test_monai_checkpoint_loader_restores_logger(tmp_path):
    first, logger, _ = _search(tmp_path, max_epochs=2, png=None)
    first.run()
    ckpt = latest_checkpoint(tmp_path / "ckpt")
    fresh, fresh_logger, _ = _search(tmp_path / "again", max_epochs=2, png=None)
    CheckpointLoader(ckpt, {"arch_logger": fresh_logger, "trainer": fresh})(fresh)
    assert fresh_logger.history == logger.history and fresh.state.epoch == 2


def test_resume_loader_without_checkpoint_starts_fresh(tmp_path):
    trainer, logger, _ = _search(
        tmp_path, max_epochs=1, png=None, resume=lambda d: ResumeCheckpointLoader(tmp_path / "none", d)
    )
    trainer.run()
    assert trainer.state.epoch == 1 and [h["epoch"] for h in logger.history] == [1]


def test_latest_checkpoint_and_losses_transform(tmp_path):
    assert latest_checkpoint(tmp_path / "missing") is None
    assert latest_checkpoint(tmp_path) is None
    old, new = tmp_path / "checkpoint_epoch=1.pt", tmp_path / "checkpoint_final_iteration=9.pt"
    torch.save({"a": 1}, old)
    torch.save({"a": 2}, new)
    os.utime(old, ns=(1, 1))
    assert latest_checkpoint(tmp_path) == str(new)
    new.write_bytes(new.read_bytes()[:-30])  # killed while writing: fall back to the older complete file
    assert latest_checkpoint(tmp_path) == str(old)
    assert latest_checkpoint(tmp_path, pattern="model*.pt") is None
    assert search_losses([{"loss": 1.5, "arch_loss": None}, {}]) == {"loss": 1.5}
    assert search_losses({"loss": torch.tensor(2.0), "arch_loss": torch.tensor(3.0)}) == {"loss": 2.0, "arch_loss": 3.0}
    assert search_losses(None) == {}


def test_logger_rejects_bad_state_and_plot_rejects_empty(tmp_path):
    logger = ArchitectureLogger(tmp_path)
    with pytest.raises(ValueError, match="history"):
        logger.load_state_dict({"nope": 1})
    with pytest.raises(ValueError, match="encoder"):
        logger.load_state_dict({"history": [{"epoch": 1, "encoder": [[1, 0, 0]], "decoder": [[1, 0, 0]] * 5}]})
    with pytest.raises(ValueError, match="log_every_epochs"):
        ArchitectureLogger(tmp_path, log_every_epochs=0)
    with pytest.raises(ValueError, match="empty"):
        plot_probability_history([], tmp_path / "x.png", Architecture.layout())


# The wiring the search bundle uses (configs/search.json): handlers that reference the trainer (checkpointing) are
# attached after it is built, which avoids a reference cycle trainer -> handlers -> save_dict -> trainer.
SEARCH_CONFIG = r"""
{
  "imports": ["$import vnas_monai", "$import vnas_monai.engine"],
  "bundle_root": ".",
  "output_dir": "$@bundle_root + '/runs/search'",
  "ckpt_dir": "$@output_dir + '/checkpoints'",
  "device": "$vnas_monai.engine.select_device('auto')",
  "max_epochs": 300,
  "arch_warmup_epochs": 20,
  "precision": "fp32",
  "network_def": {
    "_target_": "vnas_monai.spaces.vnas.VNASSupernet",
    "spatial_dims": 3, "in_channels": 1, "out_channels": 2, "init_filters": 64, "mix": false
  },
  "network": "$@network_def.to(@device)",
  "loss": {"_target_": "DiceCELoss", "to_onehot_y": true, "softmax": true, "lambda_dice": 0.0},
  "train": {"dataloader": "$None"},
  "arch": {"dataloader": "$None"},
  "optimizer": {
    "_target_": "torch.optim.SGD", "params": "$@network.weight_parameters()",
    "lr": 0.05, "momentum": 0.9, "weight_decay": 0.0005
  },
  "arch_optimizer": {
    "_target_": "torch.optim.Adam", "params": "$@network.arch_parameters()", "lr": 0.0003, "weight_decay": 0.001
  },
  "lr_scheduler": {
    "_target_": "vnas_monai.engine.PolyLR", "optimizer": "@optimizer", "power": 0.9,
    "total_iters": "$vnas_monai.engine.num_iterations(@max_epochs, @train#dataloader)"
  },
  "arch_logger": {
    "_target_": "vnas_monai.engine.ArchitectureLogger", "output_dir": "@output_dir",
    "tensorboard_dir": "$@output_dir + '/tensorboard'"
  },
  "handlers": [
    {"_target_": "LrScheduleHandler", "lr_scheduler": "@lr_scheduler", "epoch_level": false, "print_lr": false},
    "@arch_logger",
    {"_target_": "StatsHandler", "tag_name": "train", "output_transform": "$vnas_monai.engine.search_losses"},
    {
      "_target_": "TensorBoardStatsHandler", "log_dir": "$@output_dir + '/tensorboard'", "tag_name": "train",
      "output_transform": "$vnas_monai.engine.search_losses"
    }
  ],
  "trainer": {
    "_target_": "vnas_monai.engine.VNASSearchTrainer",
    "device": "@device", "max_epochs": "@max_epochs", "network": "@network",
    "train_data_loader": "@train#dataloader", "arch_data_loader": "@arch#dataloader",
    "optimizer": "@optimizer", "arch_optimizer": "@arch_optimizer", "loss_function": "@loss",
    "arch_warmup_epochs": "@arch_warmup_epochs", "precision": "@precision", "train_handlers": "@handlers"
  },
  "checkpoint_dict": {
    "network": "@network", "optimizer": "@optimizer", "arch_optimizer": "@arch_optimizer",
    "lr_scheduler": "@lr_scheduler", "trainer": "@trainer", "arch_logger": "@arch_logger"
  },
  "checkpoint_handlers": [
    {
      "_target_": "vnas_monai.engine.ResumeCheckpointLoader", "ckpt_dir": "@ckpt_dir",
      "load_dict": "@checkpoint_dict", "map_location": "@device"
    },
    {
      "_target_": "CheckpointSaver", "save_dir": "@ckpt_dir", "save_dict": "@checkpoint_dict",
      "save_final": true, "save_interval": 1, "epoch_level": true, "n_saved": 1
    }
  ],
  "search": ["$[h.attach(@trainer) for h in @checkpoint_handlers]", "$@trainer.run()"]
}
"""


def _run_config(tmp_path, max_epochs):
    from monai.bundle import ConfigParser

    from .test_search import TinySupernet, make_loader

    parser = ConfigParser(json.loads(SEARCH_CONFIG), globals={"TinySupernet": TinySupernet, "make_loader": make_loader})
    parser["bundle_root"] = str(tmp_path)
    parser["network_def"] = "$TinySupernet()"  # the real VNASSupernet is covered in test_search.py
    parser["train#dataloader"] = "$make_loader(seed=0)"
    parser["arch#dataloader"] = "$make_loader(seed=1)"
    parser["max_epochs"], parser["arch_warmup_epochs"] = max_epochs, 1
    parser.parse()
    trainer = parser.get_parsed_content("trainer")
    lrs: list[float] = []
    trainer.add_event_handler(Events.ITERATION_STARTED, lambda e: lrs.append(e.optimizer.param_groups[0]["lr"]))
    parser.get_parsed_content("search")
    return trainer, lrs


def test_bundle_style_config_runs_and_resumes(tmp_path):
    trainer, lrs = _run_config(tmp_path, max_epochs=2)
    assert trainer.state.epoch == 2 and trainer.state.arch_iteration == 2
    assert lrs == pytest.approx([0.05 * (1 - t / 4) ** 0.9 for t in range(4)])
    # a longer search resumed from the same folder (as a new process would): epoch 3, poly decay over the new horizon
    trainer, lrs = _run_config(tmp_path, max_epochs=3)
    assert trainer.state.epoch == 3 and trainer.state.arch_iteration == 4
    assert lrs == pytest.approx([0.05 * (1 - t / 6) ** 0.9 for t in (4, 5)])
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.0)
    arch = json.loads((tmp_path / "runs" / "search" / "arch.json").read_text())
    assert [h["epoch"] for h in arch["history"]] == [1, 2, 3] and arch["complete"]
