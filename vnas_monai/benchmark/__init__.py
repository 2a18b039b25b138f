"""One benchmark command for every method under the same fold, plan and wall-clock budget
(``python -m vnas_monai benchmark``, :func:`vnas_monai.benchmark.command.benchmark`).

Methods are registered in :mod:`vnas_monai.benchmark.registry` (``register_method(name, callable_or_path)``).
"""

from __future__ import annotations

from .command import DEFAULT_METHODS, benchmark
from .registry import METHODS, get_method, method_names, register_method

__all__ = ["DEFAULT_METHODS", "METHODS", "benchmark", "get_method", "method_names", "register_method"]
