"""Checkpoints that survive being killed, and resuming from them (any MONAI/ignite trainer, not only the search).

- :class:`AtomicCheckpointSaver`: MONAI ``CheckpointSaver`` whose files are written atomically and replaced safely.
- :class:`ResumeCheckpointLoader`: MONAI ``CheckpointLoader`` that resumes from the newest complete checkpoint in a
  folder, or starts afresh when there is none, so one bundle config serves both the first run and every restart.
"""

from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ignite.distributed as idist
import torch
from ignite.engine import Engine
from ignite.handlers.checkpoint import BaseSaveHandler
from monai.handlers import CheckpointLoader, CheckpointSaver

from vnas_monai.io import atomic_write

__all__ = ["AtomicCheckpointSaver", "ResumeCheckpointLoader", "checkpoint_candidates", "latest_checkpoint"]


def checkpoint_candidates(ckpt_dir: str | os.PathLike, pattern: str = "checkpoint_*.pt") -> list[str]:
    """Files matching ``pattern`` in ``ckpt_dir``, newest first (modification time, then name)."""
    folder = Path(ckpt_dir)
    if not folder.is_dir():
        return []
    files = [p for p in folder.glob(pattern) if p.is_file()]
    return [str(p) for p in sorted(files, key=lambda p: (p.stat().st_mtime_ns, p.name), reverse=True)]


def latest_checkpoint(ckpt_dir: str | os.PathLike, pattern: str = "checkpoint_*.pt") -> str | None:
    """Newest complete checkpoint matching ``pattern`` in ``ckpt_dir``, or ``None``.

    ``torch.save`` writes a zip archive whose directory comes last, so a file cut short (the process was killed
    while MONAI's non-atomic ``CheckpointSaver`` wrote it) is not a valid zip and is skipped for an older one.
    """
    for path in checkpoint_candidates(ckpt_dir, pattern):
        if zipfile.is_zipfile(path):
            return path
        logging.getLogger(__name__).warning(f"skipping incomplete checkpoint {path}")
    return None


class ResumeCheckpointLoader(CheckpointLoader):
    """MONAI ``CheckpointLoader`` that resumes from the newest checkpoint in ``ckpt_dir``, if there is one.

    MONAI's ``CheckpointSaver`` names its files ``checkpoint_epoch=N.pt`` / ``checkpoint_final_iteration=N.pt``;
    at ``STARTED`` this loader picks the newest complete one (see :func:`latest_checkpoint`) and restores ``load_dict``
    (network, optimizers, scheduler, trainer counters, architecture history) with ``torch.load(weights_only=True)``.
    With no checkpoint it does nothing, so the same config starts and resumes a search.

    Args:
        ckpt_dir: folder written by ``CheckpointSaver``.
        load_dict: objects to restore, normally the saver's ``save_dict``.
        pattern: glob of checkpoint files inside ``ckpt_dir``.
        enabled: ``False`` to always start afresh.
        name, map_location, strict: as ``CheckpointLoader``.
    """

    def __init__(
        self,
        ckpt_dir: str | os.PathLike,
        load_dict: dict,
        pattern: str = "checkpoint_*.pt",
        enabled: bool = True,
        name: str | None = None,
        map_location: Any = None,
        strict: bool = True,
    ) -> None:
        super().__init__(load_path=str(ckpt_dir), load_dict=load_dict, name=name, map_location=map_location,
                         strict=strict)
        self.ckpt_dir = Path(ckpt_dir)
        self.pattern = pattern
        self.enabled = bool(enabled)

    def __call__(self, engine: Engine) -> None:
        if not self.enabled:
            return
        path = latest_checkpoint(self.ckpt_dir, self.pattern)
        if path is None:
            self.logger.info(f"no checkpoint matching {self.pattern} in {self.ckpt_dir}: starting from the beginning.")
            return
        self.load_path = path
        try:
            super().__call__(engine)
        except Exception as e:
            raise RuntimeError(
                f"cannot resume from checkpoint {path}: {type(e).__name__}: {str(e).strip()[:2000]}\n"
                "It does not match this configuration (another architecture/init_filters/num_classes/search_mode?). "
                "Nothing was overwritten: use another output_dir, delete the checkpoint, or set resume=false."
            ) from e


class _AtomicDiskSaver(BaseSaveHandler):
    """ignite save handler: ``torch.save`` to a hidden temporary file, ``fsync``, then ``os.replace`` (rank 0 only).

    ``remove`` is deferred until the next checkpoint is safely on disk: ignite's ``Checkpoint`` removes the oldest
    file *before* saving the new one, which with ``n_saved=1`` leaves no checkpoint at all if the process dies
    in between.
    """

    def __init__(self, dirname: str | os.PathLike, filename: str | None = None) -> None:
        self.dirname = Path(dirname)
        self.filename = filename
        self._pending: list[Path] = []

    def _path(self, filename: str) -> Path:
        return self.dirname / (self.filename if self.filename is not None else filename)

    def __call__(self, checkpoint: Mapping, filename: str, metadata: Mapping | None = None) -> None:
        if idist.get_rank() != 0:
            return
        path = atomic_write(self._path(filename), lambda f: torch.save(checkpoint, f))
        pending, self._pending = self._pending, []
        for old in pending:
            if old != path and old.exists():
                old.unlink()

    def remove(self, filename: str) -> None:
        if idist.get_rank() == 0:
            self._pending.append(self._path(filename))


class AtomicCheckpointSaver(CheckpointSaver):
    """MONAI ``CheckpointSaver`` whose files are written atomically and replaced safely.

    Same arguments and file names as ``monai.handlers.CheckpointSaver``. Each checkpoint is written to a hidden
    temporary file in ``save_dir`` and renamed over its final name, so a process killed at any moment (``SIGKILL``
    included) leaves either the previous complete file or the new complete file, never a truncated one; and the
    checkpoint that ``n_saved`` retires is deleted only after its successor exists. Only rank 0 writes.
    """

    def __init__(self, save_dir: str, save_dict: dict, *args: Any, **kwargs: Any) -> None:
        super().__init__(save_dir, save_dict, *args, **kwargs)
        for checkpoint in (self._final_checkpoint, self._key_metric_checkpoint, self._interval_checkpoint):
            if checkpoint is not None:
                fixed = getattr(checkpoint.save_handler, "filename", None)
                checkpoint.save_handler = _AtomicDiskSaver(self.save_dir, fixed)
