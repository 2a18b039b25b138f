"""The evaluator's writer of the NAS-3D-U-Net bundles: Dice, sensitivity, specificity and HD95 per region and case
(Wang, BraTS 2019, §3.5, Eq. 4-7, Tables 3-4; :func:`vnas_monai.evaluation.regions.region_case_metrics`).

:class:`RegionMetricsWriter` reads each iteration's decollated ``pred`` (thresholded region masks ``(R, *spatial)``)
and ``label`` (region masks), with the voxel size from the label's meta data, and at ``COMPLETED`` writes
(atomically) into ``output_dir``:

- ``metrics.csv``: one row per case, ``case, <region>_dice, <region>_sensitivity, <region>_specificity,
  <region>_hd95_mm, ...``;
- ``metrics.json``: the same records, plus the settings;
- ``summary.json``: mean / std / median / n per region and metric (:func:`summarize_regions`).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ignite.engine import Engine, Events

from vnas_monai.io import atomic_write_text

__all__ = ["RegionMetricsWriter"]


def _case(item: Mapping[str, Any], index: int) -> str:
    from .pipeline import brain_case_name

    for key in ("image", "label", "pred"):
        source = (getattr(item.get(key), "meta", None) or {}).get("filename_or_obj")
        if source:
            return brain_case_name(source)
    return f"case{index:04d}"


def _spacing(item: Mapping[str, Any]) -> list[float] | None:
    """The voxel size (mm) of the label's current grid, from its affine (after any reorientation)."""
    from monai.data.utils import affine_to_spacing

    affine = (getattr(item.get("label"), "meta", None) or {}).get("affine")
    return None if affine is None else [float(v) for v in affine_to_spacing(affine, r=3)]


class RegionMetricsWriter:
    """Per-region metrics of every evaluated case (module docstring).

    Args:
        output_dir: folder of ``metrics.csv``, ``metrics.json`` and ``summary.json``.
        region_names: one name per channel (e.g. ``["ET", "TC", "WT"]``).
        settings: JSON-able settings recorded in ``metrics.json``.
        title: a line logged with the summary.
    """

    def __init__(self, output_dir: str | os.PathLike, region_names: Sequence[str],
                 settings: Mapping[str, Any] | None = None, title: str = "NAS-3D-U-Net evaluation") -> None:
        self.output_dir = Path(output_dir)
        self.region_names = [str(n) for n in region_names]
        self.settings = dict(settings or {})
        self.title = title
        self.records: list[dict[str, Any]] = []
        self.logger = logging.getLogger(__name__)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self.started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.iteration_completed)
        engine.add_event_handler(Events.COMPLETED, self.completed)

    def started(self, engine: Engine) -> None:
        self.records = []

    def iteration_completed(self, engine: Engine) -> None:
        from vnas_monai.evaluation.regions import region_case_metrics

        output = engine.state.output
        items = output if isinstance(output, (list, tuple)) else [output]
        for item in items:
            if "label" not in item:
                raise ValueError("RegionMetricsWriter needs a 'label' (region masks) in the evaluator's output.")
            metrics = region_case_metrics(item["pred"], item["label"], self.region_names, _spacing(item))
            self.records.append({"case": _case(item, len(self.records)), **metrics})

    def completed(self, engine: Engine) -> None:
        from vnas_monai.evaluation.regions import REGION_METRICS, summarize_regions

        if not self.records:
            raise ValueError("RegionMetricsWriter: the evaluation saw no case.")
        columns = ["case"] + [f"{r}_{m}" for r in self.region_names for m in REGION_METRICS]
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(columns)
        for rec in self.records:
            row = [rec["case"]] + [rec[r][m] for r in self.region_names for m in REGION_METRICS]
            writer.writerow(["" if v is None else (f"{v:.6g}" if isinstance(v, float) else v) for v in row])
        atomic_write_text(self.output_dir / "metrics.csv", text.getvalue())
        atomic_write_text(self.output_dir / "metrics.json",
                          json.dumps({"settings": self.settings, "cases": self.records}, indent=1) + "\n")
        summary = summarize_regions(self.records)
        atomic_write_text(self.output_dir / "summary.json",
                          json.dumps({"num_cases": len(self.records), "regions": summary}, indent=1) + "\n")
        dice = ", ".join(f"{r} {summary[r]['dice']['mean']:.3f}" for r in self.region_names)
        self.logger.info(f"{self.title}: mean Dice {dice} over {len(self.records)} cases -> {self.output_dir}")
        print(f"{self.title}: mean Dice {dice} over {len(self.records)} cases")
