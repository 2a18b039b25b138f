"""Atomic file writes: the one place where every artifact (JSON, CSV, Markdown, PNG, checkpoint) is written.

A reader, or a process killed at any moment (``SIGKILL`` included), sees the previous complete file or the new one,
never a partial one that would be taken as complete.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

__all__ = ["atomic_write", "atomic_write_png", "atomic_write_text", "save_figure"]


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], Any]) -> Path:
    """Write ``path`` through a hidden temporary file in its folder, ``fsync`` and a rename: readers and a process
    killed at any moment (``SIGKILL`` included) see the previous complete file or the new one, never a partial one.

    Args:
        path: the file to (re)place; its folder is created.
        write: writes the content to the binary file object it is given (e.g. ``lambda f: torch.save(obj, f)``).

    The file gets the usual permissions (``0o666`` minus the umask), not ``mkstemp``'s private ``0o600``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """:func:`atomic_write` of UTF-8 ``text``."""
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def atomic_write_png(path: str | os.PathLike, fig: Any, **savefig_kwargs: Any) -> Path:
    """:func:`atomic_write` of a matplotlib figure as PNG (rendered in memory first, so a failing render leaves the
    previous file in place)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", **savefig_kwargs)
    return atomic_write(path, lambda f: f.write(buf.getvalue()))


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Render a matplotlib ``Figure`` on the Agg canvas (no pyplot state, no display) and write it as PNG with
    :func:`atomic_write_png` (creating the folder; the usual file mode, 0o666 minus the umask)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    return atomic_write_png(path, fig, dpi=dpi)


def replace_dir(tmp: str | os.PathLike, out: str | os.PathLike, is_complete: Callable[[Path], bool]) -> None:
    """Move the finished folder ``tmp`` to ``out`` by renames (an old ``out`` is moved aside first and removed after),
    so that ``out`` is never a partial folder; nothing is moved when ``is_complete(out)`` says a concurrent writer
    has already finished it, and losing such a race is not an error."""
    import shutil
    import uuid

    tmp, out = Path(tmp), Path(out)
    if is_complete(out):
        return
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(out, old)
    try:
        os.rename(tmp, out)
    except OSError:
        if not is_complete(out):  # lost a race with a concurrent writer of other contents
            raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
