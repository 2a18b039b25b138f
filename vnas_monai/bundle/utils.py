"""Small helpers of the bundles' configs: the loss option, flip axes, class names, and the end-of-training
validation hook. Weights and architectures: :mod:`.weights`; datalists and case names: :mod:`.datalists`."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["AUTO", "LOSSES", "dice_weight", "parse_flip_axes", "resolve_class_names", "validate_at_end"]

logger = logging.getLogger(__name__)

#: The value of ``arch`` that lets a stage find its architecture itself (see :func:`resolve_architecture`).
AUTO = "auto"


#: The bundles' ``loss`` key -> weight of the Dice term of MONAI's ``DiceCELoss`` (cross-entropy always weighs 1):
#: ``"ce"`` is the paper's loss, ``"dice_ce"`` nnU-Net's.
LOSSES = {"ce": 0.0, "dice_ce": 1.0}


def dice_weight(loss: str) -> float:
    """``lambda_dice`` of the bundles' ``DiceCELoss`` for their ``loss`` key.

    Raises:
        ValueError: ``loss`` is not a key of :data:`LOSSES` (a misspelt value must not silently pick a loss).
    """
    if not isinstance(loss, str) or loss.lower() not in LOSSES:
        raise ValueError(f"loss: unknown value {loss!r}; choose one of {sorted(LOSSES)}.")
    return LOSSES[loss.lower()]


def parse_flip_axes(value: Any) -> list[int]:
    """The ``flip_axes`` key (random flips of the training stages and of exported bundles) as sorted distinct axes.

    ``[]``, ``None``, ``False`` or ``"none"`` mean no flips; a single axis may be given as an int.

    Raises:
        ValueError: an entry that is not a spatial axis 0, 1 or 2.
    """
    if value is None or value is False or (isinstance(value, str) and value.lower() in ("none", "off", "false", "")):
        return []
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not all(type(v) is int and v in (0, 1, 2) for v in items):  # type(): True is an int but not an axis
        raise ValueError(f"flip_axes must be spatial axes among 0, 1, 2 (e.g. [0] or [0, 1]), got {value!r}.")
    return sorted(set(items))


def resolve_class_names(
    class_names: str | Sequence[str], num_classes: int, dataset_dir: str | os.PathLike | None = None
) -> list[str]:
    """The names of a stage's ``num_classes`` classes, background first, checked against ``num_classes``.

    Args:
        class_names: one name per class, or ``"auto"``: the ``labels`` of ``<dataset_dir>/dataset.json`` (MSD
            layout) when it names ``num_classes`` classes, else ``background, class_1, ...``.
        num_classes: the network's output channels.
        dataset_dir: the dataset folder, for ``"auto"``.

    Raises:
        ValueError: an explicit list of another length (so that no class is silently left out of the metrics).
    """
    n = int(num_classes)
    if isinstance(class_names, str):
        if class_names != AUTO:
            raise ValueError(f"class_names must be a list of names or '{AUTO}', got {class_names!r}.")
        labels: Any = None
        meta = Path(dataset_dir, "dataset.json") if dataset_dir else None
        if meta is not None and meta.is_file():
            import json

            try:
                labels = json.loads(meta.read_text()).get("labels")
            except (OSError, ValueError) as e:
                raise ValueError(f"class_names='auto': cannot read the labels of {meta}: {e}") from e
        if isinstance(labels, Mapping) and sorted(labels, key=str) == sorted((str(i) for i in range(n)), key=str):
            return [str(labels[str(i)]) for i in range(n)]
        return ["background"] + [f"class_{i}" for i in range(1, n)]
    names = [str(c) for c in class_names]
    if len(names) != n:
        raise ValueError(
            f"class_names lists {len(names)} name(s) {names} but num_classes is {n}: give one name per class, "
            f"background first, or '{AUTO}' to take them from dataset.json."
        )
    return names


def validate_at_end(trainer: Any, evaluator: Any, interval: int) -> None:
    """Run ``evaluator`` once more after training unless the last epoch was just validated by MONAI's
    ``ValidationHandler(interval)``, so the best-model checkpoint (``model.pt``) always exists after a run."""
    epoch = int(trainer.state.epoch)
    if epoch > 0 and epoch % int(interval) != 0:
        evaluator.run(epoch)
