"""Early checks of a bundle run's configuration, so that a mistake fails before any output is touched.

``monai.bundle run ... --learnig_rate 0.1`` (or an overlay file with a misspelt key) silently *adds* a key that
nothing reads, and the run goes on with the default. :func:`check_config_keys`, called first in a bundle's
``initialize`` list, compares the top-level keys of the merged configuration with the keys that the bundle's own
config files define and raises a ``KeyError`` naming each unknown key and the closest known one.

MONAI evaluates ``$`` expressions without handing them the parser, so :func:`check_config_keys` finds the running
``ConfigWorkflow`` (``monai.bundle run`` and ``ConfigWorkflow(...).initialize()`` both have one) on the call stack;
a parser or a folder can also be passed explicitly.
"""

from __future__ import annotations

import difflib
import inspect
import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["ConfigKeyError", "known_config_keys", "unknown_config_keys", "check_config_keys", "find_config_workflow"]

logger = logging.getLogger(__name__)

#: Keys that MONAI itself adds to a bundle configuration (``_meta_`` from metadata.json).
RESERVED_KEYS = frozenset({"_meta_", "_requires_", "imports"})


def tracking_keys() -> frozenset[str]:
    """Keys that ``monai.bundle run ... --tracking mlflow`` adds to the configuration (``experiment_name``,
    ``run_name``, ``tracking_uri``, ``save_execute_config``, ``is_not_rank0``, ...): not a user's typo."""
    try:
        from monai.bundle.utils import DEFAULT_EXP_MGMT_SETTINGS
    except ImportError:  # an older MONAI without experiment management
        return frozenset()
    keys: set[str] = set()
    for settings in DEFAULT_EXP_MGMT_SETTINGS.values():
        keys |= {str(k) for k in settings.get("configs", {})}
    return frozenset(keys)


#: Config key listing extra keys a user overlay may add on purpose (not an error).
EXTRA_KEYS_KEY = "extra_keys"


class ConfigKeyError(KeyError):
    """A ``KeyError`` whose message prints as written (``KeyError`` would show the repr of its message)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def known_config_keys(bundle_dir: str | os.PathLike) -> set[str]:
    """Top-level keys defined by the bundle's config files (every ``*.json`` in ``bundle_dir`` but metadata)."""
    keys: set[str] = set(RESERVED_KEYS)
    for path in sorted(Path(bundle_dir).glob("*.json")):
        if path.name == "metadata.json":
            continue
        try:
            content = json.loads(path.read_text())
        except (OSError, ValueError) as e:  # a sibling config being edited must not stop this run
            logger.warning(f"check_config_keys: skipping {path}, not readable JSON: {e}")
            continue
        if isinstance(content, Mapping):
            keys.update(str(k).split("#")[0] for k in content)
    return keys


def unknown_config_keys(config: Mapping[str, Any], known: Iterable[str]) -> dict[str, str | None]:
    """``{unknown_key: closest known key or None}`` for the top-level keys of ``config`` not in ``known``."""
    known = set(known) | {str(k) for k in config.get(EXTRA_KEYS_KEY) or []} | tracking_keys()
    candidates = sorted(known - RESERVED_KEYS)
    out: dict[str, str | None] = {}
    for key in config:
        if key in known:
            continue
        close = difflib.get_close_matches(str(key), candidates, n=1, cutoff=0.6)
        out[str(key)] = close[0] if close else None
    return out


def find_config_workflow() -> Any:
    """The ``monai.bundle.ConfigWorkflow`` whose expression is being evaluated (searched on the call stack)."""
    from monai.bundle import ConfigWorkflow

    frame = inspect.currentframe()
    try:
        while frame is not None:
            candidate = frame.f_locals.get("self")
            if isinstance(candidate, ConfigWorkflow):
                return candidate
            frame = frame.f_back
    finally:
        del frame
    return None


def check_config_keys(
    config: Mapping[str, Any] | Any = None, bundle_dir: str | os.PathLike | None = None, enabled: bool = True
) -> bool:
    """Raise :class:`ConfigKeyError` if the configuration has a top-level key that the bundle's configs do not define.

    Args:
        config: the merged configuration (a mapping or a ``ConfigParser``); defaults to the running workflow's.
        bundle_dir: folder of the bundle's config files; defaults to the running workflow's ``config_root_path``
            (the folder of the first ``--config_file``).
        enabled: ``False`` to skip (e.g. ``--check_keys false`` for a deliberate experiment).

    Returns:
        ``True`` if checked, ``False`` if skipped (disabled, or no workflow to take the configuration from).

    Raises:
        ConfigKeyError: (a ``KeyError``) naming every unknown key, its closest known key, and how to declare a
            deliberate extra key (list it under ``extra_keys``).
    """
    if not enabled:
        return False
    if config is None or bundle_dir is None:
        workflow = find_config_workflow()
        if workflow is None:
            logger.warning("check_config_keys: no running ConfigWorkflow found; configuration keys not checked.")
            return False
        config = workflow.parser if config is None else config
        bundle_dir = workflow.config_root_path if bundle_dir is None else bundle_dir
    raw = getattr(config, "config", config)
    if not isinstance(raw, Mapping):
        raise TypeError(f"check_config_keys: expected a mapping or a ConfigParser, got {type(config).__name__}.")
    unknown = unknown_config_keys(raw, known_config_keys(bundle_dir))
    if unknown:
        lines = [
            f"  '{key}'" + (f": did you mean '{close}'?" if close else ": no similar key")
            for key, close in sorted(unknown.items())
        ]
        raise ConfigKeyError(
            f"unknown configuration key(s), not defined by the bundle configs in {bundle_dir} (misspelt?):\n"
            + "\n".join(lines)
            + f"\nList a deliberately added key under '{EXTRA_KEYS_KEY}' to allow it."
        )
    return True
