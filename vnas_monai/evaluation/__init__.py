"""Evaluation of segmentations, for every space and every stage: per-case metrics and the paper's summary
(:mod:`.metrics`), the report files (:mod:`.reports`), the per-case writer an evaluator runs (:mod:`.writers`), the
overlay PNGs of predictions on images (:mod:`.overlays`), the comparison tables of methods (:mod:`.tables`, what the
benchmark command writes) and paired per-case differences between methods (:mod:`.paired`). Bundle configs
reference ``vnas_monai.evaluation``'s handlers by ``_target_``."""

from __future__ import annotations

from .metrics import METRICS, PERCENT_METRICS, case_metrics, summarize
from .overlays import OverlayWriter, save_overlay
from .paired import case_dice, format_paired, paired_difference
from .regions import REGION_METRICS, label_region_metrics, region_case_metrics, summarize_regions
from .reports import format_markdown, read_metrics, write_reports
from .tables import table_rows, write_boxplot, write_tables
from .writers import SegmentationMetricsWriter

__all__ = [
    "METRICS",
    "OverlayWriter",
    "PERCENT_METRICS",
    "REGION_METRICS",
    "SegmentationMetricsWriter",
    "case_dice",
    "case_metrics",
    "format_markdown",
    "format_paired",
    "label_region_metrics",
    "paired_difference",
    "read_metrics",
    "region_case_metrics",
    "save_overlay",
    "summarize",
    "summarize_regions",
    "table_rows",
    "write_boxplot",
    "write_reports",
    "write_tables",
]
