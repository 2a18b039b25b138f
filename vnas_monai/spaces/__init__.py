"""Search spaces behind one protocol (:mod:`vnas_monai.spaces.protocol`), registered by name.

A registered space names, as lazy ``"module:attribute"`` strings (nothing is imported until asked for), its
encoding class (with ``from_dict``), its discrete-network builder, for differentiable strategies its supernet and,
for MONAI bundles of its network (the MONAI Label export), its :class:`BundleNetwork`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from .protocol import (
    DECIDED_MARGIN,
    BundleNetwork,
    DifferentiableSpace,
    Encoding,
    NetworkBuilder,
    RowLayout,
    VariableEncoding,
    cell_margins,
    choices_digest,
    decision_of,
    neighbours_by_variable,
)

__all__ = [
    "BundleNetwork",
    "DECIDED_MARGIN",
    "DifferentiableSpace",
    "Encoding",
    "NetworkBuilder",
    "RowLayout",
    "SearchSpace",
    "VariableEncoding",
    "cell_margins",
    "choices_digest",
    "decision_of",
    "get_space",
    "neighbours_by_variable",
    "register_space",
    "space_names",
]


def _load(ref: str) -> Any:
    module, attr = ref.split(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class SearchSpace:
    """A space's entry points, as ``"module:attribute"``: ``encoding`` (a class with ``from_dict``), ``network``
    (a :class:`NetworkBuilder`), ``supernet`` (a :class:`DifferentiableSpace` class, or ``None``) and ``bundle``
    (a :class:`BundleNetwork`: how a bundle config builds the network; ``None``: the space cannot be exported)."""

    name: str
    encoding: str
    network: str
    supernet: str | None = None
    bundle: str | None = None

    def encoding_class(self) -> Any:
        return _load(self.encoding)

    def network_builder(self) -> Any:
        return _load(self.network)

    def supernet_class(self) -> Any:
        if self.supernet is None:
            raise ValueError(f"search space {self.name!r} has no supernet: differentiable strategies cannot search it.")
        return _load(self.supernet)

    def bundle_network(self) -> BundleNetwork:
        """What a MONAI bundle of this space's network needs (:class:`BundleNetwork`).

        Raises:
            ValueError: the space declares no ``bundle``, or its reference is not a :class:`BundleNetwork`.
        """
        if self.bundle is None:
            raise ValueError(f"search space {self.name!r} declares no bundle network (SearchSpace.bundle): its "
                             "networks cannot be written as MONAI bundles.")
        spec = _load(self.bundle)
        if not isinstance(spec, BundleNetwork):
            raise ValueError(f"search space {self.name!r}: bundle {self.bundle!r} is a {type(spec).__name__}, "
                             "not a vnas_monai.spaces.BundleNetwork.")
        return spec

    def from_dict(self, data: Any) -> Any:
        """An encoding of this space from its JSON dict."""
        return self.encoding_class().from_dict(data)


_SPACES: dict[str, SearchSpace] = {}


def register_space(space: SearchSpace, overwrite: bool = False) -> SearchSpace:
    """Register ``space`` under ``space.name``.

    Raises:
        ValueError: a reference that is not ``"module:attribute"``, or a taken name without ``overwrite``.
    """
    for ref in (space.encoding, space.network, space.supernet, space.bundle):
        if ref is not None and (not isinstance(ref, str) or ref.count(":") != 1):
            raise ValueError(f"search space {space.name!r}: references must be 'module:attribute', got {ref!r}.")
    if space.name in _SPACES and not overwrite:
        raise ValueError(f"search space {space.name!r} is already registered; pass overwrite=True.")
    _SPACES[space.name] = space
    return space


def get_space(name: str) -> SearchSpace:
    """The registered space ``name``.

    Raises:
        KeyError: unknown name (the message lists the registered ones).
    """
    if name not in _SPACES:
        raise KeyError(f"unknown search space {name!r}; registered: {', '.join(space_names())}.")
    return _SPACES[name]


def space_names() -> list[str]:
    return sorted(_SPACES)


register_space(SearchSpace("vnas", encoding="vnas_monai.spaces.vnas:Architecture",
                           network="vnas_monai.spaces.vnas.network:build_vnasnet",
                           supernet="vnas_monai.spaces.vnas:VNASSupernet",
                           bundle="vnas_monai.spaces.vnas.network:BUNDLE"))
register_space(SearchSpace("nas3dunet", encoding="vnas_monai.spaces.nas3dunet.genotype:Genotype",
                           network="vnas_monai.spaces.nas3dunet.network:build_nas3dunet",
                           supernet="vnas_monai.spaces.nas3dunet.supernet:NAS3DUNetSupernet",
                           bundle="vnas_monai.spaces.nas3dunet.network:BUNDLE"))
register_space(SearchSpace("mbnas", encoding="vnas_monai.spaces.mbnas:MBNASEncoding",
                           network="vnas_monai.spaces.mbnas.network:build_network",
                           bundle="vnas_monai.spaces.mbnas.exported:BUNDLE"))
