"""Evaluation of segmentations, for every space and every stage: per-case metrics and the paper's summary
(:mod:`.metrics`), the report files (:mod:`.reports`), the per-case writer an evaluator runs (:mod:`.writers`) and
the overlay PNGs of predictions on images (:mod:`.overlays`), and the comparison tables of methods
(:mod:`.tables`, what the benchmark command writes). Bundle configs reference ``vnas_monai.evaluation``'s
handlers by ``_target_``."""

from __future__ import annotations

from .metrics import METRICS, PERCENT_METRICS, case_metrics, summarize
from .overlays import OverlayWriter, save_overlay
from .regions import REGION_METRICS, label_region_metrics, region_case_metrics, summarize_regions
from .reports import format_markdown, write_reports
from .tables import table_rows, write_boxplot, write_tables
from .writers import SegmentationMetricsWriter

__all__ = [
    "METRICS",
    "OverlayWriter",
    "PERCENT_METRICS",
    "REGION_METRICS",
    "SegmentationMetricsWriter",
    "case_metrics",
    "format_markdown",
    "label_region_metrics",
    "region_case_metrics",
    "save_overlay",
    "summarize",
    "summarize_regions",
    "table_rows",
    "write_boxplot",
    "write_reports",
    "write_tables",
]
