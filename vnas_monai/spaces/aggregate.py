"""Fold aggregation through the search-space protocol (V-NAS, §3.1: the searches of the folds are combined by summing
each cell's probabilities, then taking the argmax), for any registered space.

An arch.json names its space with a ``space`` key; files without one (V-NAS's, as every V-NAS stage writes them)
belong to ``default_space``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import get_space

__all__ = ["aggregate", "load_encoding"]


def load_encoding(source: Any, default_space: str = "vnas") -> Any:
    """An encoding from an encoding object (returned as is), a JSON dict, or an arch.json path.

    Raises:
        FileNotFoundError: a path that does not exist.
        ValueError: a file that is not JSON, or data the space's ``from_dict`` refuses (naming the file).
    """
    if hasattr(source, "digest") and hasattr(source, "to_dict"):
        return source
    if isinstance(source, Mapping):
        return get_space(str(source.get("space", default_space))).from_dict(source)
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"architecture file {path} does not exist.")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}.")
    try:
        return get_space(str(data.get("space", default_space))).from_dict(data)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


def aggregate(sources: Sequence[Any], default_space: str = "vnas") -> Any:
    """Combine the searches of several folds: the mean of each cell's probabilities over the folds, discretised by
    the space (``from_probabilities``: V-NAS and DARTS take each row's argmax).

    Args:
        sources: encodings, JSON dicts or arch.json paths of one space, each with probabilities.
        default_space: the space of files without a ``space`` key.

    Returns:
        The space's encoding, with the mean probabilities and ``meta["aggregated_from"]``.

    Raises:
        ValueError: no sources, sources of different spaces or probability tables, or one without probabilities
            (naming it).
    """
    if not sources:
        raise ValueError("aggregate needs at least one arch.json.")
    encodings = [load_encoding(s, default_space) for s in sources]
    names = [str(s) if isinstance(s, (str, os.PathLike)) else repr(s) for s in sources]
    spaces = {e.space for e in encodings}
    if len(spaces) != 1:
        raise ValueError(f"cannot aggregate architectures of different search spaces {sorted(spaces)}: {names}.")
    sums: dict[str, list[list[float]]] | None = None
    for name, enc in zip(names, encodings):
        probs = getattr(enc, "probabilities", None)
        if probs is None:
            raise ValueError(f"{name}: has no 'probabilities' to aggregate (was it written by a search?).")
        if sums is None:
            sums = {part: [[0.0] * len(row) for row in rows] for part, rows in probs.items()}
        shape = {part: [len(r) for r in rows] for part, rows in probs.items()}
        if shape != {part: [len(r) for r in rows] for part, rows in sums.items()}:
            raise ValueError(f"{name}: its probability table does not match the first one's rows and options.")
        for part, rows in probs.items():
            for acc, row in zip(sums[part], rows):
                for k, v in enumerate(row):
                    acc[k] += v
    n = len(encodings)
    mean = {part: [[v / n for v in row] for row in rows] for part, rows in sums.items()}
    return type(encodings[0]).from_probabilities(mean, meta={"aggregated_from": names})
