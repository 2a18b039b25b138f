"""One place that turns a failed bundle run into a one-screen message that ends with the cause.

``python -m monai.bundle run ...`` ends a failed run with a 50-150 line traceback whose last line is MONAI's generic
``RuntimeError: Failed to evaluate ConfigExpression`` (or ``Failed to instantiate component``), while the useful
message (``Cannot load image <file>: ...``, ``unknown configuration key 'learnig_rate'``, ``dataset_dir ... does not
exist``) sits in the middle of it. :func:`install_excepthook`, the first entry of every V-NAS bundle's ``initialize``
list, installs a ``sys.excepthook`` that

* finds the *cause*: the outermost exception of the chain raised by ``vnas_monai`` code (a DataLoader worker's
  exception, which reaches the main process as text, is parsed back out of it);
* prints a short message: the config item that was being built, where the full traceback was written, and, last,
  the cause's type and message (which names the file or key);
* writes the full traceback to ``<tmp>/vnas_monai/error-<time>-<pid>.log`` (``--debug True`` prints it as well);
* strips the tracebacks that MONAI's ``StatsHandler`` and ignite log on the way out (the file has it);
* ends the process with ``os._exit(1)`` after flushing the output: exiting through the interpreter's shutdown can
  abort with ``terminate called without an active exception`` (exit code 134) when a C++ thread (torch's or
  ITK's, e.g. a data thread still busy with another case) outlives the main thread.

Exceptions that are not ours (a bug, or MONAI's own configuration errors) are printed in full, as Python would.
"""

from __future__ import annotations

import datetime
import logging
import os
import re
import sys
import tempfile
import traceback
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["DEBUG_ENV", "find_cause", "format_failure", "install_excepthook", "report_and_exit"]

#: Environment variable that, set to 1, prints the full traceback too (as ``--debug True``).
DEBUG_ENV = "VNAS_DEBUG"
_PACKAGE_DIR = str(Path(__file__).resolve().parents[1])
_FRAME_RE = re.compile(r'^\s*File "(?P<file>[^"]+)", line \d+')
_CHAIN_RE = re.compile(r"^(The above exception was the direct cause|During handling of the above exception)")
_state: dict[str, Any] = {"installed": False, "debug": False, "previous": None}


def _ours(filename: str) -> bool:
    return os.path.abspath(filename).startswith(_PACKAGE_DIR + os.sep)


def _chain(exc: BaseException) -> list[BaseException]:
    out, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        out.append(exc)
        exc = exc.__cause__ if exc.__cause__ is not None else (None if exc.__suppress_context__ else exc.__context__)
    return out


def _raised_by_us(exc: BaseException) -> bool:
    tb = exc.__traceback__
    last = None
    while tb is not None:
        last, tb = tb, tb.tb_next
    return last is not None and _ours(last.tb_frame.f_code.co_filename)


def _worker_cause(text: str) -> str | None:
    """The first exception of a DataLoader worker's traceback text that was raised in ``vnas_monai`` code."""
    if "Traceback (most recent call last)" not in text:
        return None
    blocks, block = [], []
    for line in text.splitlines():
        if _CHAIN_RE.match(line.strip()):
            blocks.append(block)
            block = []
        else:
            block.append(line)
    blocks.append(block)
    for lines in blocks:
        frames = [i for i, line in enumerate(lines) if _FRAME_RE.match(line)]
        if not frames or not _ours(_FRAME_RE.match(lines[frames[-1]]).group("file")):
            continue
        i = frames[-1] + 1
        while i < len(lines) and lines[i].startswith("    "):  # the code line and its ^^^ markers
            i += 1
        message = "\n".join(lines[i:]).strip()
        if message:
            return message
    return None


def find_cause(exc: BaseException) -> str | None:
    """``"<Type>: <message>"`` of the outermost exception in ``exc``'s chain raised by ``vnas_monai`` code, or None."""
    for e in _chain(exc):
        if _raised_by_us(e):
            return f"{type(e).__name__}: {e}"
    for e in _chain(exc):
        worker = _worker_cause(str(e))
        if worker:
            return worker
    return None


def _config_item(tb: TracebackType | None) -> str | None:
    """Id of the innermost MONAI config item being evaluated or instantiated in ``tb``."""
    found = None
    while tb is not None:
        candidate = tb.tb_frame.f_locals.get("self")
        # only plain attributes: a ConfigParser's or a ConfigWorkflow's __getattr__ would resolve config ids
        if type(candidate).__module__ == "monai.bundle.config_item":
            item_id = vars(candidate).get("id")
            found = item_id if isinstance(item_id, str) and item_id else found
        tb = tb.tb_next
    return found


def _config_files(argv: list[str]) -> str | None:
    """The ``--config_file`` of a ``monai.bundle run`` command line."""
    for i, arg in enumerate(argv):
        if arg == "--config_file" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--config_file="):
            return arg.split("=", 1)[1]
    return None


def format_failure(exc: BaseException, log_file: str | os.PathLike | None = None) -> str | None:
    """The short message for a failed run, ending with the cause; None if no cause is ours (print it in full)."""
    cause = find_cause(exc)
    if cause is None:
        return None
    item = None
    for e in _chain(exc):
        item = _config_item(e.__traceback__) or item
    files = _config_files(sys.argv)
    building = f" while building config item '{item}'" if item else ""
    if files:
        lines, debug = [f"vnas_monai: the bundle run ({files}) stopped{building}."], "rerun with --debug True"
    else:
        command = " ".join(["vnas_monai", *sys.argv[1:2]]) if sys.argv[1:] else "vnas_monai"
        lines, debug = [f"{command}: stopped{building}."], f"rerun with {DEBUG_ENV}=1"
    if log_file:
        lines.append(f"Full traceback: {log_file} (or {debug}).")
    lines.append(cause)
    return "\n".join(lines)


def _log_path() -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(tempfile.gettempdir(), "vnas_monai", f"error-{stamp}-{os.getpid()}.log")


def _write_log(text: str) -> str | None:
    path = _log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError:
        return None
    return str(path)


def _short_records(factory: Any) -> Any:
    """A ``logging`` record factory dropping the tracebacks of our errors from records (MONAI's ``StatsHandler`` and
    ignite log the exception on the way out, ignite with a DataLoader worker's whole traceback in the message)."""

    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        if _state["debug"]:
            return record
        try:
            exc = record.exc_info[1] if record.exc_info else None
            if exc is not None and find_cause(exc) is not None:
                record.exc_info, record.exc_text = None, None
            message = record.getMessage()
            if "\n" in message and "Traceback (most recent call last)" in message:
                record.msg, record.args = message.splitlines()[0] + " [traceback in the error log]", None
        except Exception:  # logging must go on whatever the record holds
            pass
        return record

    return make


def report_and_exit(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    """Print the short message of a failure (or the full traceback if the cause is not ours) and exit with 1."""
    previous = _state["previous"] or sys.__excepthook__
    if issubclass(exc_type, (KeyboardInterrupt, SystemExit)):
        previous(exc_type, exc, tb)
        return
    _state["debug"] = _state["debug"] or _debug()
    full = "".join(traceback.format_exception(exc_type, exc, tb))
    try:
        message = format_failure(exc, log_file=None if _state["debug"] else _write_log(full))
    except Exception:  # the hook must never hide the original error
        message = None
    try:
        if message is None or _state["debug"]:
            previous(exc_type, exc, tb)
        if message is not None:
            sys.stdout.flush()
            print(message, file=sys.stderr)
    finally:
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(1)


def _debug(flag: Any = False) -> bool:
    return (bool(flag) and str(flag).lower() not in ("false", "0", "no")) or os.environ.get(DEBUG_ENV, "") not in (
        "", "0")


def install_excepthook(debug: Any = False) -> bool:
    """Install the short failure message for this process (see the module docstring); idempotent.

    Args:
        debug: also print the full traceback (the bundles' ``debug`` key; ``VNAS_DEBUG=1`` does the same).

    Returns:
        ``True`` (usable as a bundle ``initialize`` entry).
    """
    _state["debug"] = _debug(debug)
    if not _state["installed"]:
        _state["previous"], _state["installed"] = sys.excepthook, True
        sys.excepthook = report_and_exit
        logging.setLogRecordFactory(_short_records(logging.getLogRecordFactory()))
    from vnas_monai.bundle.logs import keep_log_lines_whole

    keep_log_lines_whole()  # the console's other stumble: log lines appended to a progress bar
    return True
