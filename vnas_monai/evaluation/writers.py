"""The per-case writer of an evaluation run: an ignite handler that computes every case's metrics as the
evaluator produces it and writes the reports at the end (:mod:`vnas_monai.evaluation.reports`)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from vnas_monai.evaluation.metrics import case_metrics
from vnas_monai.evaluation.reports import format_markdown, write_reports

__all__ = ["SegmentationMetricsWriter"]

logger = logging.getLogger(__name__)


def _spacing_of(x: Any) -> list[float] | None:
    pixdim = getattr(x, "pixdim", None)
    if pixdim is None:
        return None
    return [float(v) for v in (pixdim.tolist() if hasattr(pixdim, "tolist") else pixdim)][:3]


class SegmentationMetricsWriter:
    """Ignite handler for a MONAI evaluator: per-case metrics at every iteration, reports at completion.

    The evaluator's decollated output items must hold ``pred`` and ``label`` label maps (or class scores) on the same
    grid, as MetaTensors (their ``pixdim`` gives the spacing; their source file names the case). At ``COMPLETED``
    :func:`write_reports` writes ``metrics.csv``, ``summary.json`` and ``summary.md`` into ``output_dir`` and the
    table is logged.

    Args:
        output_dir: folder of the reports.
        class_names: all class names, background first (``num_classes`` = its length).
        tolerance_mm: surface Dice tolerance.
        settings: stored in ``summary.json`` (e.g. the checkpoint, fold and architecture).
        title: heading of ``summary.md``.
        pred_key, label_key, image_key: keys of the output items.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        class_names: Sequence[str],
        tolerance_mm: float = 1.0,
        settings: Mapping[str, Any] | None = None,
        title: str | None = None,
        pred_key: str = "pred",
        label_key: str = "label",
        image_key: str = "image",
    ) -> None:
        names = [str(n) for n in class_names]
        if len(names) < 2:
            raise ValueError(f"class_names must list background and at least one class, got {names}.")
        self.output_dir = Path(output_dir)
        self.class_names = names
        self.tolerance_mm = float(tolerance_mm)
        self.settings = dict(settings or {})
        self.title = title
        self.pred_key, self.label_key, self.image_key = pred_key, label_key, image_key
        self.records: list[dict[str, Any]] = []
        self.summary: dict[str, Any] | None = None

    def attach(self, engine: Any) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.STARTED, self.reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.iteration_completed)
        engine.add_event_handler(Events.COMPLETED, self.completed)

    def reset(self, engine: Any = None) -> None:
        self.records = []
        self.summary = None

    def iteration_completed(self, engine: Any) -> None:
        from vnas_monai.bundle.datalists import case_name

        output = engine.state.output
        items = output if isinstance(output, (list, tuple)) else [output]
        for item in items:
            if self.label_key not in item or not isinstance(item[self.label_key], torch.Tensor):
                raise ValueError(f"evaluation needs a label for every case; an output item lacks '{self.label_key}'.")
            pred, label = item[self.pred_key], item[self.label_key]
            source = getattr(item.get(self.image_key, pred), "meta", {}).get("filename_or_obj", "")
            name = case_name(source) if source else f"case_{len(self.records):04d}"
            values = case_metrics(pred, label, len(self.class_names), _spacing_of(label), self.tolerance_mm)
            self.records.append({"case": name, **values})

    def completed(self, engine: Any) -> None:
        if not self.records:
            raise ValueError("no case was evaluated: the evaluation datalist is empty.")
        settings = {"tolerance_mm": self.tolerance_mm, **self.settings}
        self.summary = write_reports(self.records, self.output_dir, self.class_names[1:], settings, self.title)
        logger.info("evaluation of %d case(s) -> %s\n%s", len(self.records), self.output_dir,
                    format_markdown(self.summary))
