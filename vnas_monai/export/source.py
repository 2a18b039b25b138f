"""What an export takes from its source bundle (e.g. ``bundles/vnas_nih``): literal hyper-parameters, the metadata,
and the names of the output channels."""

from __future__ import annotations

import ast
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional, Union

__all__ = ["SOURCE_CONFIGS", "SOURCE_KEYS", "label_names", "read_source_settings"]

#: Config keys read from the source bundle (literal values only; expressions are ignored).
SOURCE_KEYS = (
    "in_channels",
    "num_classes",
    "init_filters",
    "intensity_clip",
    "spacing",
    "roi_size",
    "infer_roi_size",
    "learning_rate",
    "batch_size",
    "num_samples",
    "flip_axes",
)
#: Source config files, first found wins per key (bundle folder itself, then its ``configs/``).
SOURCE_CONFIGS = ("train.json", "inference.json", "search.json")
_DEFAULTS: dict[str, Any] = {
    "in_channels": 1,
    "num_classes": 2,
    "init_filters": 64,
    "intensity_clip": None,
    "spacing": None,
    "roi_size": [96, 96, 64],
    "infer_roi_size": None,
    "learning_rate": 0.05,
    "batch_size": 1,
    "num_samples": 2,
    "flip_axes": [0, 1],
}


def _literal(value: Any) -> bool:
    """True for config values that are plain data (no ``$`` expression, no ``@`` reference anywhere)."""
    if isinstance(value, str):
        return not value.startswith(("$", "@", "%"))
    if isinstance(value, (list, tuple)):
        return all(_literal(v) for v in value)
    if isinstance(value, dict):
        return all(_literal(v) for v in value.values())
    return True


_PLANNED = re.compile(r"^\$vnas_monai\.plan\.plan_value\(@plan_dict, '\w+', (.*)\)$")


def _source_value(value: Any) -> tuple[bool, Any]:
    """``(found, value)`` of a source config entry: a literal, or the no-plan default of a planned key
    (``"$vnas_monai.plan.plan_value(@plan_dict, 'roi_size', [96, 96, 64])"`` gives ``[96, 96, 64]``)."""
    if _literal(value):
        return True, value
    match = _PLANNED.match(value) if isinstance(value, str) else None
    if match is not None:
        try:
            return True, ast.literal_eval(match.group(1))
        except (ValueError, SyntaxError):
            return False, None
    return False, None


def read_source_settings(bundle_dir: Union[str, os.PathLike, None]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Hyper-parameters and metadata of a source bundle (e.g. ``bundles/vnas_nih``).

    Returns:
        ``(settings, metadata)``: ``settings`` has every key of :data:`SOURCE_KEYS` (the first literal value found in
        train.json, inference.json, search.json, else a default); ``metadata`` is the source metadata.json or {}.

    Raises:
        FileNotFoundError: ``bundle_dir`` is not a folder.
    """
    settings: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    if bundle_dir is not None:
        root = Path(bundle_dir)
        if not root.is_dir():
            raise FileNotFoundError(f"bundle_dir {root} is not a folder.")
        folders = [root, root / "configs"]
        for name in SOURCE_CONFIGS:
            for folder in folders:
                path = folder / name
                if not path.is_file():
                    continue
                config = json.loads(path.read_text())
                for key in SOURCE_KEYS:
                    if key not in settings and key in config:
                        found, value = _source_value(config[key])
                        if found:
                            settings[key] = value
        for folder in folders:
            if (folder / "metadata.json").is_file():
                metadata = json.loads((folder / "metadata.json").read_text())
                break
    for key, value in _DEFAULTS.items():
        settings.setdefault(key, value)
    return settings, metadata


def label_names(labels: Any, metadata: Mapping[str, Any], num_classes: Optional[int]) -> dict[str, str]:
    """Output channel names ``{"0": "background", "1": ...}``, from ``labels`` (a dict, a list, JSON or
    ``background,pancreas``), else the source metadata's output ``channel_def``, else ``label_<i>``.

    Raises:
        ValueError: neither labels nor ``num_classes``, or names that are not channels 0..N-1.
    """
    if labels is None:
        outputs = metadata.get("network_data_format", {}).get("outputs", {})
        pred = next(iter(outputs.values()), {}) if outputs else {}
        labels = pred.get("channel_def")
    if labels is None:
        if num_classes is None:
            raise ValueError("give labels (or num_classes) for a source bundle without metadata.json channel_def.")
        labels = {str(i): ("background" if i == 0 else f"label_{i}") for i in range(int(num_classes))}
    if isinstance(labels, str):
        labels = json.loads(labels) if labels.strip().startswith(("{", "[")) else labels.split(",")
    if isinstance(labels, (list, tuple)):
        labels = {str(i): str(v) for i, v in enumerate(labels)}
    labels = {str(int(k)): str(v) for k, v in dict(labels).items()}
    if sorted(int(k) for k in labels) != list(range(len(labels))):
        raise ValueError(f"labels must name channels 0..N-1, got {labels}.")
    return labels
