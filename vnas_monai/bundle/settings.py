"""Settings that travel with a training run: ``<train output_dir>/settings.json`` beside ``model.pt``.

The train bundle writes (atomically) the settings a network's weights only make sense with: ``in_channels``,
``num_classes``, ``init_filters``, ``class_names``, ``intensity_clip``, ``spacing``, ``roi_size``,
``infer_roi_size``, ``flip_axes`` and the architecture. The inference and evaluation bundles take their defaults for
these keys from the file beside their ``checkpoint`` (:func:`stored_setting`) and refuse an explicit value that
contradicts it, naming both (:func:`check_run_settings`); ``export_bundle`` needs only the run folder or checkpoint.

Weights without a ``settings.json`` (older runs, MONAI Label fine-tunes) still give ``in_channels``,
``init_filters`` and ``num_classes``: they are read from the shapes of the stem and head tensors.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from vnas_monai.io import atomic_write_text

__all__ = [
    "CHECKED_SETTINGS",
    "SETTINGS_FILE",
    "check_run_settings",
    "load_run_settings",
    "resolve_checkpoint",
    "save_run_settings",
    "settings_from_state_dict",
    "shape_mismatch",
    "stage_dir",
    "stored_setting",
]

SETTINGS_FILE = "settings.json"
#: Keys whose explicit value must agree with the training run's (they define the network or its input).
CHECKED_SETTINGS = ("in_channels", "num_classes", "init_filters", "class_names", "intensity_clip", "spacing")
#: The weights' tensors that give the width, the channels and the classes of a VNASNet.
_STEM, _HEAD = "stem.conv1.conv.weight", "head.up.bias"
_WEIGHTS_NAMES = ("model.pt", "model_final.pt")


def resolve_checkpoint(checkpoint: str | os.PathLike) -> Path:
    """A weights file: ``checkpoint`` itself, or ``model.pt`` (else ``model_final.pt``) of a run folder."""
    path = Path(checkpoint).expanduser()
    if path.is_dir():
        for name in _WEIGHTS_NAMES:
            if (path / name).is_file():
                return path / name
        raise FileNotFoundError(f"run folder {path} holds no {' or '.join(_WEIGHTS_NAMES)} (is training finished?).")
    return path


def stage_dir(checkpoint: str | os.PathLike, stage: str) -> str:
    """``<fold folder>/<stage>`` for the weights ``<fold folder>/train/model.pt`` (or the run folder ``.../train``):
    inference and evaluation outputs go beside the run they come from, whatever ``work_dir`` says."""
    path = Path(checkpoint).expanduser()
    run = path if path.is_dir() else path.parent
    return str(run.parent / stage)


def _plain(value: Any) -> Any:
    """JSON-ready value: tuples as lists, tensors and numpy numbers as Python numbers."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def save_run_settings(output_dir: str | os.PathLike, architecture: Any = None, **settings: Any) -> Path:
    """Write ``<output_dir>/settings.json`` atomically (the train bundle's first step); returns its path."""
    data = {k: _plain(v) for k, v in settings.items()}
    if architecture is not None:  # the codes (arch.json beside it keeps the probabilities)
        arch = architecture.to_dict() if hasattr(architecture, "to_dict") else _plain(architecture)
        data["architecture"] = {k: arch[k] for k in ("encoder", "decoder") if k in arch} or arch
    path = Path(output_dir) / SETTINGS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")
    return path


def settings_from_state_dict(state: dict[str, Any]) -> dict[str, int]:
    """``in_channels``, ``init_filters`` and ``num_classes`` of a VNASNet state dict (what its shapes tell)."""
    out: dict[str, int] = {}
    stem, head = state.get(_STEM), state.get(_HEAD)
    if stem is not None and getattr(stem, "ndim", 0) == 5:
        out["init_filters"], out["in_channels"] = int(stem.shape[0]), int(stem.shape[1])
    if head is not None and getattr(head, "ndim", 0) == 1:
        out["num_classes"] = int(head.shape[0])
    return out


@lru_cache(maxsize=8)
def _load(path: str, mtime: float, weights_mtime: float) -> tuple[str, dict[str, Any]]:
    settings_file = Path(path).parent / SETTINGS_FILE
    if settings_file.is_file():
        try:
            data = json.loads(settings_file.read_text(encoding="utf-8"))
        except ValueError as e:
            raise ValueError(f"{settings_file} is not valid JSON: {e}") from e
        if not isinstance(data, dict):
            raise ValueError(f"{settings_file} must hold a JSON object of settings.")
        return str(settings_file), data
    if weights_mtime >= 0:
        from vnas_monai.bundle.weights import load_state_dict

        return path, settings_from_state_dict(load_state_dict(path))
    return "", {}


def load_run_settings(checkpoint: str | os.PathLike | None) -> tuple[str, dict[str, Any]]:
    """``(source, settings)`` of the training run of ``checkpoint``: its ``settings.json``, else what the weights'
    shapes tell; ``("", {})`` when neither exists (the stage then fails on the missing weights themselves)."""
    if checkpoint in (None, ""):
        return "", {}
    try:
        path = resolve_checkpoint(checkpoint)
    except FileNotFoundError:
        return "", {}
    settings_file = path.parent / SETTINGS_FILE
    mtime = settings_file.stat().st_mtime if settings_file.is_file() else -1.0
    weights_mtime = path.stat().st_mtime if path.is_file() else -1.0
    source, data = _load(str(path), mtime, weights_mtime)
    return source, dict(data)


def stored_setting(checkpoint: str | os.PathLike | None, name: str, default: Any = None) -> Any:
    """The training run's value of ``name`` (see :func:`load_run_settings`), else ``default``."""
    return load_run_settings(checkpoint)[1].get(name, default)


def _same(a: Any, b: Any) -> bool:
    def norm(v: Any) -> Any:
        v = _plain(v)
        if isinstance(v, list):
            return [norm(x) for x in v]
        if isinstance(v, bool) or v is None or isinstance(v, str):
            return v
        return float(v) if isinstance(v, (int, float)) else v

    return norm(a) == norm(b)


def check_run_settings(checkpoint: str | os.PathLike | None, **values: Any) -> bool:
    """Refuse values that contradict the training run of ``checkpoint``.

    Raises:
        ValueError: naming the key, the value given, the stored value and where it is stored.

    Returns:
        ``True`` (usable in a bundle's ``initialize`` list).
    """
    source, stored = load_run_settings(checkpoint)
    for name, value in values.items():
        if name not in stored or value == "auto" or _same(value, stored[name]):
            continue
        raise ValueError(
            f"{name}={value!r} contradicts the training run of {checkpoint}: it was trained with "
            f"{name}={stored[name]!r} ({source}). Leave --{name} out to use the stored value."
        )
    return True


def shape_mismatch(network: Any, state: Mapping[str, Any], path: Any = "weights") -> str | None:
    """One line on why ``state`` does not fit ``network`` by shape (width, channels, classes), or None if it does.

    PyTorch's own message lists every tensor (about 1,300 lines for a VNASNet of another ``init_filters``).
    """
    own = network.state_dict()
    differ = [k for k, v in state.items() if k in own and tuple(own[k].shape) != tuple(v.shape)]
    if not differ:
        return None
    got, want = settings_from_state_dict(dict(state)), settings_from_state_dict(own)
    keys = [k for k in ("init_filters", "in_channels", "num_classes") if k in got and got.get(k) != want.get(k)]
    first = differ[0]
    cause = (
        ", ".join(f"{k}={got[k]} (the network was built with {k}={want.get(k)})" for k in keys)
        if keys else f"{first}: {tuple(state[first].shape)} in the file, {tuple(own[first].shape)} in the network"
    )
    return (
        f"weights file {path} does not fit the network: {len(differ)} of {len(own)} tensors differ in shape; "
        f"the weights were trained with {cause}. Pass the training run's values (or its settings.json beside the "
        "weights)." if keys else
        f"weights file {path} does not fit the network: {len(differ)} tensors differ in shape, first {cause}."
    )
