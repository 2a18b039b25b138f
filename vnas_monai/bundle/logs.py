"""Log lines that a progress bar does not split.

The bundles log to stdout while ignite's ``ProgressBar`` (tqdm) redraws its bar on stderr without a newline; on a
terminal, a log record written while the bar is drawn is appended to the bar's line (``... 2/3 [00:05<00:02]2026-12-01
12:00:00,000 - INFO - ...``). :class:`ProgressBarSafeHandler`, the console handler of the bundles' ``logging.conf``,
writes each record through ``tqdm.write``, which clears the bars, prints the record on its own line and redraws them.

MONAI 1.6 refuses a ``logging.conf`` naming a handler class outside ``logging`` (a security check), so the bundles
keep MONAI's plain ``StreamHandler`` and :func:`keep_log_lines_whole` (called by the first ``initialize`` entry,
:func:`vnas_monai.bundle.errors.install_excepthook`) turns the root logger's console handlers into this class.
"""

from __future__ import annotations

import logging

__all__ = ["ProgressBarSafeHandler", "keep_log_lines_whole"]


class ProgressBarSafeHandler(logging.StreamHandler):
    """``logging.StreamHandler`` (same arguments) whose records never share a line with a tqdm progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm
        except ImportError:  # no tqdm: no bars to clear
            super().emit(record)
            return
        try:
            tqdm.write(self.format(record), file=self.stream)
            self.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


def keep_log_lines_whole(logger: logging.Logger | None = None) -> int:
    """Make the console ``StreamHandler`` s of ``logger`` (default: the root logger) write through ``tqdm.write``;
    returns how many were changed (handlers writing to files are left alone)."""
    changed = 0
    for handler in (logger or logging.getLogger()).handlers:
        if type(handler) is logging.StreamHandler:
            handler.__class__ = ProgressBarSafeHandler
            changed += 1
    return changed
