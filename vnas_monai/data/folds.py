"""Cross-validation folds and the V-NAS data protocol (paper §4: 4-fold CV; search on S_train / S_val = 2 : 1).

For fold ``f`` of ``k``: fold ``f`` is the test set S_test; the cases of the other folds are split, seeded and
deterministically, into disjoint S_train and S_val (``val_fraction`` = 1/3 gives the paper's 2 : 1). The search
updates the weights on S_train and the architecture on S_val; the discrete architecture is then retrained on
``trainval`` = S_train + S_val and evaluated on S_test.

Folds are stored as plain JSON (``{"num_folds": k, "seed": s, "folds": [[case, ...], ...]}``) so that a split can be
frozen, inspected and reused by every run of a cross-validation.
"""

from __future__ import annotations

import json
import logging
import operator
import os
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vnas_monai.io import atomic_write_text

from .datalist import check_pairs, load_datalist

__all__ = [
    "make_folds", "write_folds", "read_folds", "fold_datalists", "split_train_val", "training_cases", "TRAIN_SPLITS"
]

logger = logging.getLogger(__name__)


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}.")
    return value


def make_folds(datalist: Sequence[Mapping[str, Any]], num_folds: int = 4, seed: int = 0) -> dict[str, Any]:
    """Shuffle the cases with ``seed`` and deal them round-robin into ``num_folds`` folds.

    Args:
        datalist: the cases (dicts with at least ``"image"`` and ``"label"``).
        num_folds: number of folds (the paper uses 4).
        seed: shuffle seed; the same datalist and seed always give the same folds.

    Returns:
        ``{"num_folds": num_folds, "seed": seed, "folds": [[case, ...], ...]}``; fold sizes differ by at most one.

    Raises:
        ValueError: ``num_folds`` < 1, or fewer cases than folds.
    """
    num_folds = _check_int("num_folds", num_folds, 1)
    seed = _check_int("seed", seed, 0)
    if len(datalist) < num_folds:
        raise ValueError(f"Cannot make {num_folds} folds from {len(datalist)} case(s): need at least one per fold.")
    order = list(range(len(datalist)))
    random.Random(seed).shuffle(order)
    folds = [[dict(datalist[i]) for i in order[f::num_folds]] for f in range(num_folds)]
    return {"num_folds": num_folds, "seed": seed, "folds": folds}


def _validate_folds(folds: Any, source: str) -> dict[str, Any]:
    if not isinstance(folds, Mapping) or not all(k in folds for k in ("num_folds", "folds")):
        raise ValueError(f"{source} is malformed: expected an object with 'num_folds' and 'folds'.")
    k, lists = folds["num_folds"], folds["folds"]
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"{source} is malformed: 'num_folds' must be an int >= 1, got {k!r}.")
    if not isinstance(lists, list) or len(lists) != k:
        got = len(lists) if isinstance(lists, list) else type(lists).__name__
        raise ValueError(f"{source} is malformed: 'folds' must be a list of {k} folds, got {got}.")
    seen: dict[str, int] = {}
    for f, fold in enumerate(lists):
        if not isinstance(fold, list) or not fold:
            raise ValueError(f"{source} is malformed: fold {f} must be a non-empty list of cases.")
        for case in fold:
            if not isinstance(case, Mapping) or not all(isinstance(case.get(key), str) for key in ("image", "label")):
                raise ValueError(f"{source} is malformed: fold {f} has a case without 'image'/'label' paths: {case!r}.")
            if case["image"] in seen:
                raise ValueError(
                    f"{source} is malformed: image {case['image']} is in fold {seen[case['image']]} and fold {f}."
                )
            seen[case["image"]] = f
    return dict(folds)


def write_folds(folds: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write folds as JSON, atomically (a reader never sees a partial file).

    Args:
        folds: the output of :func:`make_folds` (extra keys are kept).
        path: the JSON file to write; parent folders are created.

    Returns:
        The path written.

    Raises:
        ValueError: ``folds`` is malformed.
    """
    path = Path(path)
    folds = _validate_folds(folds, "folds to write")
    atomic_write_text(path, json.dumps(folds, indent=1) + "\n")
    return path


def read_folds(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate folds written by :func:`write_folds`.

    Args:
        path: the JSON file.

    Returns:
        The folds dict.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: not JSON, or not valid folds (the message names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"folds file {path} does not exist.")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"folds file {path} is not valid JSON: {e}") from e
    return _validate_folds(data, f"folds file {path}")


def split_train_val(
    cases: Sequence[Mapping[str, Any]], val_fraction: float = 1 / 3, seed: int | str = 0
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split cases into disjoint S_train and S_val, seeded and independent of the input order.

    Args:
        cases: the cases to split (at least 2).
        val_fraction: fraction of the cases that go to S_val (rounded, at least 1 case each side).
        seed: shuffle seed (any int or str).

    Returns:
        ``(train, val)``, each sorted by image path.

    Raises:
        ValueError: ``val_fraction`` not in (0, 1), or fewer than 2 cases.
    """
    if not isinstance(val_fraction, (int, float)) or not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}.")
    if len(cases) < 2:
        raise ValueError(f"Cannot split {len(cases)} case(s) into S_train and S_val: need at least 2.")
    ordered = sorted((dict(c) for c in cases), key=lambda c: (c["image"], c["label"]))
    random.Random(f"vnas-train-val-{seed}").shuffle(ordered)
    num_val = min(max(1, round(len(ordered) * val_fraction)), len(ordered) - 1)
    by_image = operator.itemgetter("image")
    return sorted(ordered[num_val:], key=by_image), sorted(ordered[:num_val], key=by_image)


def fold_datalists(
    dataset_dir: str | os.PathLike,
    fold: int = 0,
    num_folds: int = 4,
    seed: int = 0,
    val_fraction: float = 1 / 3,
    datalist_file: str | os.PathLike | None = None,
    layout: str = "auto",
    max_cases: int | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """The S_train / S_val / S_test datalists of one cross-validation fold.

    Args:
        dataset_dir: the dataset folder (see :func:`vnas_monai.data.load_datalist`).
        fold: which fold is S_test, in ``range(num_folds)``.
        num_folds: number of folds; with 1 there is no test set and every case goes to S_train or S_val.
        seed: seed of the folds and of the train/val split.
        val_fraction: fraction of the non-test cases in S_val (1/3: the paper's train : val = 2 : 1).
        datalist_file: optional folds JSON. If it exists its folds are used (``dataset_dir`` is then not scanned;
            relative paths in the file are taken relative to ``dataset_dir``); if it does not, the folds are computed
            and written there, so that every fold of a cross-validation uses the same split.
        layout: dataset layout, ``"auto"``, ``"msd"`` or ``"nih"``.
        max_cases: use only the first ``max_cases`` cases (sorted by image path) before folding, for quick runs.

    Returns:
        ``{"train": [...], "val": [...], "test": [...], "trainval": train + val}``; the three sets are disjoint.

    Raises:
        ValueError: ``fold`` out of range, a ``datalist_file`` made with another ``num_folds``, ``max_cases`` or
            ``dataset_dir``, a fold with no cases, too few cases, or image/label shape mismatches.
        FileNotFoundError: missing dataset folder or files.
    """
    num_folds = _check_int("num_folds", num_folds, 1)
    if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < num_folds:
        raise ValueError(f"fold must be an int in [0, num_folds) = [0, {num_folds}), got fold={fold!r}.")
    if max_cases is not None:
        max_cases = _check_int("max_cases", max_cases, 1)
    folds = _get_folds(dataset_dir, num_folds, seed, datalist_file, layout, max_cases)
    if not folds["folds"][fold]:
        raise ValueError(f"Fold {fold} of {num_folds} has no cases.")
    if num_folds == 1:
        test, rest = [], list(folds["folds"][0])
    else:
        test = [dict(c) for c in folds["folds"][fold]]
        rest = [c for f, cases in enumerate(folds["folds"]) if f != fold for c in cases]
    train, val = split_train_val(rest, val_fraction, seed=f"{seed}-{fold}")
    test = sorted(test, key=operator.itemgetter("image"))
    check_pairs(train + val + test)
    return {"train": train, "val": val, "test": test, "trainval": train + val}


def _absolute(case: Mapping[str, Any], root: Path) -> dict[str, Any]:
    """A case whose relative ``image`` / ``label`` paths are taken relative to ``root`` (the dataset folder)."""
    out = dict(case)
    for key in ("image", "label"):
        path = Path(out[key]).expanduser()
        out[key] = os.path.normpath(path if path.is_absolute() else root / path)
    return out


def _get_folds(
    dataset_dir: str | os.PathLike,
    num_folds: int,
    seed: int,
    datalist_file: str | os.PathLike | None,
    layout: str,
    max_cases: int | None,
) -> dict[str, Any]:
    if datalist_file and Path(datalist_file).is_file():
        folds = read_folds(datalist_file)
        if folds["num_folds"] != num_folds:
            raise ValueError(
                f"folds file {datalist_file} has num_folds={folds['num_folds']} but num_folds={num_folds} was asked: "
                "delete it or pass another datalist_file."
            )
        if folds.get("max_cases", max_cases) != max_cases:
            raise ValueError(
                f"folds file {datalist_file} was made with max_cases={folds['max_cases']} but max_cases={max_cases} "
                "was asked: delete it or pass another datalist_file."
            )
        recorded = folds.get("dataset_dir")
        if recorded and dataset_dir not in (None, "") and Path(recorded) != Path(dataset_dir).expanduser().resolve():
            raise ValueError(
                f"folds file {datalist_file} was made for dataset_dir {recorded}, not {dataset_dir}: delete it or pass "
                "another datalist_file."
            )
        if folds.get("seed", seed) != seed:
            logger.warning(
                "folds file %s was made with seed=%s; using its folds (seed=%s only seeds the train/val split).",
                datalist_file, folds["seed"], seed,
            )
        root = Path(dataset_dir).expanduser() if dataset_dir not in (None, "") else Path(datalist_file).parent
        folds["folds"] = [[_absolute(case, root) for case in fold] for fold in folds["folds"]]
        return folds
    datalist = load_datalist(dataset_dir, layout=layout)
    if max_cases is not None:
        datalist = datalist[:max_cases]
    folds = make_folds(datalist, num_folds=num_folds, seed=seed)
    folds["max_cases"] = max_cases
    folds["dataset_dir"] = str(Path(dataset_dir).expanduser().resolve())
    if datalist_file:
        write_folds(folds, datalist_file)
    return folds


#: the splits a training stage may train on (never the held-out S_test)
TRAIN_SPLITS = ("train", "val", "trainval")


def training_cases(splits: Mapping[str, Sequence[Any]], train_split: str = "trainval") -> list[Any]:
    """The cases of ``splits[train_split]`` (bundle key ``train_split``).

    Raises:
        ValueError: ``train_split`` is ``"test"`` (the fold's held-out cases) or not a split name; or it is empty.
    """
    if train_split not in TRAIN_SPLITS:
        raise ValueError(f"train_split must be one of {list(TRAIN_SPLITS)} (never the held-out 'test'), "
                         f"got {train_split!r}.")
    cases = list(splits[train_split])
    if not cases:
        raise ValueError(f"train_split {train_split!r} of this fold holds no case.")
    return cases
