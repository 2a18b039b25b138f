"""The MONAI Label export: a trained network of any registered search space as a self-contained MONAI bundle
(model-zoo layout).

- :mod:`.bundle`: :func:`export_bundle` (``python -m vnas_monai export_bundle``), the encoding and the network
  (through the space's :class:`vnas_monai.spaces.BundleNetwork`), the atomic write of the bundle folder;
- :mod:`.source`: the settings, metadata and label names read from the source bundle;
- :mod:`.configs`: the exported ``configs/inference.json`` and ``configs/train.json``;
- :mod:`.docs`: ``configs/metadata.json`` and ``docs/README.md``;
- :mod:`.templates`: the Apache-2.0 ``LICENSE`` and the default ``logging.conf``, as package data.

The exported inference config calls :func:`vnas_monai.bundle.export.image_datalist` (its name in every exported
bundle).
"""

from __future__ import annotations

from .bundle import build_network, export_bundle, resolve_encoding
from .configs import inference_config, train_config
from .docs import bundle_readme, metadata_config
from .source import read_source_settings

__all__ = [
    "build_network",
    "bundle_readme",
    "export_bundle",
    "inference_config",
    "metadata_config",
    "read_source_settings",
    "resolve_encoding",
    "train_config",
]
