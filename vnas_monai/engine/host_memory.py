"""Keep freed tensor memory in a CPU training process instead of handing it back to the kernel (issue 12).

glibc's ``malloc`` serves every block above 32 MB (its largest mmap threshold) with a fresh ``mmap`` and unmaps it
on ``free``. A training step allocates and frees the same large activations and gradients every iteration, so each
of them is page-faulted and zeroed by the kernel again, every step: time spent outside PyTorch that neither
oneDNN nor bf16 can win back. PyTorch's and Intel's CPU tuning guides answer this with jemalloc or tcmalloc through
``LD_PRELOAD``; the same reuse is available from glibc itself, with no new dependency and no launcher:
``mallopt(M_MMAP_MAX, 0)`` serves large blocks from the heap, and ``mallopt(M_TRIM_THRESHOLD, -1)`` keeps freed heap
memory for the next step (``man mallopt``).

Measured on the 2-core AMX CPU, 2 threads, batch 2, at the bundles' width (``init_filters`` 64, 96x96x64;
``benchmarks/bench_search.py`` with and without ``--system-malloc``, ``benchmarks/results/host_memory_2026-12-07/``):
the fp32 mixed search iteration takes 14.8 s instead of 28.2 s, the bf16 one 6.9 s instead of 8.2 s, the fp32
retraining step 3.8 s instead of 4.6 s; the bf16 retraining step, whose tensors are half the size, gains 0-5 %.
The peak resident memory grows by about 10 %. At ``init_filters`` 16 and 64^3 few tensors reach the threshold
and nothing measurable changes.

The setting is process-wide and cannot be undone for memory already kept, so only training engines apply it (an
inference server gives its memory back as before). It is skipped where the user already chose: another allocator
in ``LD_PRELOAD`` (jemalloc, tcmalloc, mimalloc), glibc's own ``MALLOC_*`` variables or ``GLIBC_TUNABLES``, or
``VNAS_KEEP_FREED_MEMORY=0``; and on a C library other than glibc.
"""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["keep_freed_memory"]

#: glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4

_ENV_SWITCH = "VNAS_KEEP_FREED_MEMORY"
_GLIBC_VARIABLES = ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_")
_ALLOCATORS = ("jemalloc", "tcmalloc", "mimalloc")

# the outcome in this process: set once, reported to every later caller
_state: dict[str, str] = {}


def _reason_to_skip(environ) -> str | None:
    if environ.get(_ENV_SWITCH, "1").strip().lower() in ("0", "false", "no", "off"):
        return f"{_ENV_SWITCH}={environ[_ENV_SWITCH]}"
    preload = environ.get("LD_PRELOAD", "")
    for name in _ALLOCATORS:
        if name in preload:
            return f"{name} is preloaded"
    chosen = [v for v in _GLIBC_VARIABLES if v in environ]
    if "glibc.malloc" in environ.get("GLIBC_TUNABLES", ""):
        chosen.append("GLIBC_TUNABLES")
    if chosen:
        return f"glibc malloc set by {', '.join(chosen)}"
    if not sys.platform.startswith("linux"):
        return f"not glibc ({sys.platform})"
    return None


def keep_freed_memory(environ=None, libc=None) -> str:
    """Serve large blocks from the heap and keep freed memory for reuse, once per process (see the module docstring).

    Args:
        environ: the environment to read (default ``os.environ``; tests pass their own).
        libc: the C library to call (default glibc's ``libc.so.6``; tests pass a stand-in).

    Returns:
        what was done or why not (the same line on every call), for the caller's start-of-run log line.
    """
    if "outcome" in _state:
        return _state["outcome"]
    environ = os.environ if environ is None else environ
    reason = _reason_to_skip(environ)
    if reason is None:
        try:
            libc = ctypes.CDLL("libc.so.6") if libc is None else libc
            ok = libc.mallopt(M_MMAP_MAX, 0) == 1 and libc.mallopt(M_TRIM_THRESHOLD, -1) == 1
        except (OSError, AttributeError) as err:  # musl and other C libraries: no libc.so.6 or no mallopt
            ok, reason = False, f"no glibc mallopt ({err})"
        outcome = "CPU memory: freed blocks kept for reuse (glibc mallopt: no mmap, no trim)" if ok else (
            f"CPU memory: the system allocator as it is ({reason or 'mallopt refused the settings'})")
    else:
        outcome = f"CPU memory: the system allocator as it is ({reason})"
    _state["outcome"] = outcome
    return outcome
