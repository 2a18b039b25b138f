"""The benchmark's method registry: name -> training callable.

A method is any callable ``method(plan, splits, budget_s, work_dir) -> TrainedModel``:

* ``plan``: the fold's plan (:mod:`vnas_monai.plan`), the same for every method;
* ``splits``: :func:`vnas_monai.data.fold_datalists` output (``train``, ``val``, ``trainval``, ``test``); a method
  may train on anything but ``test``;
* ``budget_s``: wall-clock seconds for everything the method does before inference (V-NAS: search *and*
  retraining);
* ``work_dir``: the method's own folder (created; its ``result.json`` is written by the benchmark);
* returns a :class:`vnas_monai.baselines.TrainedModel` (model, sliding-window ``roi_size``, checkpoint, ``meta``),
  which the benchmark evaluates on ``splits["test"]``.

Register with :func:`register_method` (a callable, or a lazy ``"module:function"`` string), e.g.
``register_method("vnas", "vnas_monai.workflows.vnas_benchmark:train_vnas")``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["METHODS", "register_method", "get_method", "method_names"]

#: Registered methods: name -> callable or ``"module:function"``.
METHODS: dict[str, Callable[..., Any] | str] = {
    "unet": "vnas_monai.baselines.unet:train_unet",
    "dynunet": "vnas_monai.baselines.dynunet:train_dynunet",
    "segresnet": "vnas_monai.baselines.segresnet:train_segresnet",
    "unet3d": "vnas_monai.baselines.unet3d:train_unet3d",
    "vnet": "vnas_monai.baselines.vnet:train_vnet",
    "vnas": "vnas_monai.benchmark.vnas:train_vnas",
    "vnas_mix": "vnas_monai.benchmark.vnas:train_vnas_mix",
    # MB-NAS (Bosma et al. 2022), 2D slices on the plan's volumes: searches from the U-Net and the paper's references
    "mbnas": "vnas_monai.spaces.mbnas.benchmark:train_mbnas_search",
    "mbnas_micro": "vnas_monai.spaces.mbnas.benchmark:train_micro",
    "mbnas_macro": "vnas_monai.spaces.mbnas.benchmark:train_macro",
    "mbnas_unet": "vnas_monai.spaces.mbnas.benchmark:train_unet2d",
    "mbnas_resunet": "vnas_monai.spaces.mbnas.benchmark:train_resunet2d",
}


def _manual(encoder_op: str, decoder_op: str) -> Callable[..., Any]:
    def method(*args: Any, **kwargs: Any) -> Any:
        from vnas_monai.benchmark.vnas import manual_method

        return manual_method(encoder_op, decoder_op)(*args, **kwargs)

    return method


def _random(index: int) -> Callable[..., Any]:
    def method(*args: Any, **kwargs: Any) -> Any:
        from vnas_monai.benchmark.vnas import train_vnas_random

        return train_vnas_random(*args, index=index, **kwargs)

    return method


# seeded random architectures of the V-NAS space: the search must beat the mean of vnas_random1..3 (issue 14);
# vnas_random4..6 are three more draws, for a closer estimate of what a random architecture gives
for _index in range(1, 7):
    METHODS[f"vnas_random{_index}"] = _random(_index)

# Table 1's nine manual choices: vnas_3d_3d, vnas_2d_p3d, ... (encoder candidate, decoder candidate)
for _enc in ("2d", "3d", "p3d"):
    for _dec in ("2d", "3d", "p3d"):
        METHODS[f"vnas_{_enc}_{_dec}"] = _manual(_enc, _dec)


def register_method(name: str, method: Callable[..., Any] | str, overwrite: bool = False) -> None:
    """Register ``method`` under ``name`` (``[a-z0-9_]+``).

    Raises:
        ValueError: a bad name, a string that is not ``"module:function"``, or a taken name without ``overwrite``.
    """
    if not isinstance(name, str) or not name or not all(c.islower() or c.isdigit() or c == "_" for c in name):
        raise ValueError(f"method name must be lower-case letters, digits and '_', got {name!r}.")
    if isinstance(method, str) and method.count(":") != 1:
        raise ValueError(f"method {name!r}: a lazy method must be 'module:function', got {method!r}.")
    if not isinstance(method, str) and not callable(method):
        raise ValueError(f"method {name!r} must be callable or 'module:function', got {type(method).__name__}.")
    if name in METHODS and not overwrite:
        raise ValueError(f"method {name!r} is already registered ({METHODS[name]!r}); pass overwrite=True.")
    METHODS[name] = method


def method_names() -> list[str]:
    return sorted(METHODS)


def get_method(name: str) -> Callable[..., Any]:
    """The callable registered as ``name`` (a lazy one is imported now).

    Raises:
        KeyError: unknown name (the message lists the registered ones).
    """
    if name not in METHODS:
        raise KeyError(f"unknown benchmark method {name!r}; registered: {', '.join(method_names())}.")
    method = METHODS[name]
    if isinstance(method, str):
        module, attr = method.split(":")
        method = getattr(importlib.import_module(module), attr)
    return method
