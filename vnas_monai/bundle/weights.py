"""Which architecture a stage builds and which weights it loads (retrain / inference / evaluation bundles).

Weights files: ``model.pt`` (best validation Dice) and ``model_final.pt`` (last iteration) written by the train
bundle are *plain state dicts* of :class:`vnas_monai.spaces.vnas.VNASNet` (MONAI's ``CheckpointSaver`` stores a
single-entry ``save_dict`` unwrapped). They load with ``torch.load(path, weights_only=True)`` and then
``network.load_state_dict(...)`` directly, and with MONAI's ``CheckpointLoader(load_dict={"model": net})``;
:func:`load_weights` accepts that format and ``{"model": state_dict}`` alike. The state dict carries the
network's ``arch_code`` buffer, so the architecture of a weights file can be read back from it
(:func:`checkpoint_architecture`): the inference and evaluation bundles need no ``arch.json``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from vnas_monai.spaces.vnas.encoding import Architecture

from .utils import AUTO

__all__ = ["checkpoint_architecture", "load_state_dict", "load_weights", "resolve_architecture", "save_architecture"]

logger = logging.getLogger(__name__)


def load_state_dict(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """The network state dict of a weights file, loaded with ``torch.load(weights_only=True)``.

    Accepts a plain state dict, or one held under ``model``, ``network``, ``state_dict`` or ``net`` (MONAI
    ``CheckpointSaver`` files, e.g. the search's and the retraining's ``checkpoint_*.pt``); ``DataParallel`` /
    ``DistributedDataParallel`` ``module.`` prefixes are removed.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file cannot be read with ``torch.load(weights_only=True)`` or holds no state dict.
    """
    from vnas_monai.bundle.settings import resolve_checkpoint

    path = resolve_checkpoint(path)  # a run folder: its model.pt
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist (train the network first, or pass --checkpoint).")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise ValueError(f"cannot load weights file {path} with torch.load(weights_only=True): {e}") from e
    if isinstance(data, Mapping):
        nested = [k for k in ("model", "network", "state_dict", "net") if isinstance(data.get(k), Mapping)]
        data = data[nested[0]] if nested else data
    if not isinstance(data, Mapping) or not data or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise ValueError(
            f"weights file {path} is not a state dict (nor one under 'model', 'network', 'state_dict' or 'net')."
        )
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in data.items()}


def load_weights(network: torch.nn.Module, path: str | os.PathLike, map_location: Any = "cpu") -> torch.nn.Module:
    """Load ``path`` (see :func:`load_state_dict`) into ``network`` strictly and return the network.

    Raises:
        ValueError: the weights do not fit: one line naming the width / channels / classes they were trained with.
    """
    from vnas_monai.bundle.settings import shape_mismatch

    state = load_state_dict(path, map_location)
    mismatch = shape_mismatch(network, state, path)
    if mismatch:
        raise ValueError(mismatch)
    try:
        network.load_state_dict(state)
    except (RuntimeError, ValueError) as e:
        raise ValueError(f"weights file {path} does not fit the network: {e}") from e
    return network


def checkpoint_architecture(path: str | os.PathLike) -> Architecture:
    """The architecture of a ``VNASNet`` weights file, read from its ``arch_code`` buffer.

    Raises:
        ValueError: the state dict has no ``arch_code`` (not a ``VNASNet``) or a malformed one.
    """
    state = load_state_dict(path)
    if "arch_code" not in state:
        raise ValueError(f"weights file {path} has no 'arch_code': it is not a VNASNet state dict.")
    codes = [int(c) for c in state["arch_code"].flatten().tolist()]
    try:
        return Architecture.from_codes(codes, meta={"source": str(path)})
    except ValueError as e:
        raise ValueError(f"weights file {path}: {e}") from None


def resolve_architecture(
    arch: Any = AUTO,
    checkpoint: str | os.PathLike | None = None,
    search_arch: str | os.PathLike | None = None,
    fallback: Any = None,
) -> Architecture:
    """The architecture a stage builds.

    ``arch`` other than ``"auto"`` wins: an ``Architecture``, a preset (``"nih"``, ``"msd_lung"``,
    ``"msd_pancreas"``), a uniform code (``"2d"``, ``"3d"``, ``"p3d"``) or a path to an ``arch.json``. With
    ``"auto"`` the first that exists is used: the ``arch_code`` of ``checkpoint`` (inference, evaluation), the
    search's ``search_arch`` file, then ``fallback`` (the bundle's preset, with a warning).

    Raises:
        FileNotFoundError: ``"auto"`` found nothing and there is no fallback (the message names what was tried).
        ValueError: an unknown preset or a malformed ``arch.json`` (named).
    """
    if arch is None or (isinstance(arch, str) and arch.strip().lower() == AUTO):
        if checkpoint and Path(checkpoint).is_dir():  # a training run's folder: its model.pt
            from vnas_monai.bundle.settings import resolve_checkpoint

            checkpoint = resolve_checkpoint(checkpoint)
        if checkpoint and Path(checkpoint).is_file():
            return checkpoint_architecture(checkpoint)
        if search_arch and Path(search_arch).is_file():
            return Architecture.load(search_arch)
        if fallback is not None:
            logger.warning(
                "arch='auto': no %s found; using the architecture %r. Pass --arch (arch.json or preset) to choose.",
                " nor ".join(str(p) for p in (checkpoint, search_arch) if p) or "searched architecture", fallback,
            )
            return Architecture.resolve(fallback)
        tried = [str(p) for p in (checkpoint, search_arch) if p]
        raise FileNotFoundError(
            f"arch='auto' found no architecture (looked for {', '.join(tried) or 'nothing'}): run the search first or "
            "pass --arch with an arch.json path or a preset ('nih', 'msd_lung', 'msd_pancreas')."
        )
    return Architecture.resolve(arch)


def save_architecture(architecture: Architecture, output_dir: str | os.PathLike, png: bool = True) -> Path:
    """Write ``<output_dir>/arch.json`` (and ``architecture.png``, cells coloured by 2D/3D/P3D); returns the JSON."""
    out = Path(output_dir)
    path = architecture.save(out / "arch.json")
    if png:
        try:
            architecture.plot(out / "architecture.png")
        except Exception as e:  # the JSON is what later stages read; the picture is for people
            logger.warning("could not draw %s: %s", out / "architecture.png", e)
    return path
