"""Text templates of an exported bundle, as package data: the Apache-2.0 licence and the default ``logging.conf``."""

from __future__ import annotations

from importlib.resources import files

__all__ = ["apache_2_0", "logging_conf"]


def apache_2_0() -> str:
    """The Apache License 2.0, under which vnas_monai and its exported bundles are distributed."""
    return files(__package__).joinpath("LICENSE-Apache-2.0.txt").read_text(encoding="utf-8")


def logging_conf() -> str:
    """The ``logging.conf`` of an exported bundle whose source run has none."""
    return files(__package__).joinpath("logging.conf").read_text(encoding="utf-8")
