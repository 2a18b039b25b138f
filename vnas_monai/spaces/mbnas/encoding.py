"""MB-NAS encodings: a fixed number of nodes, each with four categorical variables (Bosma et al., "Mixed-Block Neural
Architecture Search for Medical Image Segmentation", SPIE Medical Imaging 2022, §2.1, Fig. 1).

Node ``l`` (0-based) is the output of cell ``l``, which reads node ``l - 1`` (node 0 reads the image):

* ``channels.<l>`` (a_l): ``"down"`` (channels doubled, resolution halved: a down-scaling cell), ``"same"`` (a
  non-scaling cell) or ``"up"`` (channels halved, resolution doubled); node ``l`` at level ``L`` has
  ``init_channels * 2**L`` channels;
* ``block.<l>`` (b_l): ``"vgg"``, ``"residual"``, ``"dense"`` or ``"inception"`` (Fig. 1c; :mod:`.blocks`);
* ``kernel.<l>`` (c_l): the block's convolution size, one of :data:`KERNEL_SIZES`;
* ``skip.<l>`` (d_l): ``-1`` (no skip) or an earlier node at node ``l``'s resolution, whose feature maps are
  concatenated with the cell's scaled input (nodes 0 and 1 have no possible source, so no ``skip`` variable).

The variables ``channels.*`` and ``skip.*`` are the topology, ``block.*`` and ``kernel.*`` the cell level
(:mod:`.presets` names them for the §2.4 comparisons). Which encodings build a network is the one rule of
:mod:`.rule` (``repair``), which :meth:`MBNASEncoding.with_value` applies: a neighbour is one variable changed and then
repaired, and a change the repair would undo is refused.

The paper names no convolution sizes (:data:`KERNEL_SIZES` is our choice). Its count, 1.14e18 networks of 10 nodes,
fits three sizes per node: 12 cell options per node (4 blocks x 3 sizes) give 12**10 = 6.2e10, times the 1.7e7
level sequences within 4 halvings with their level-matched skips, 1.05e18; with two sizes no count of the topologies
comes within a factor 13 of it. So we take 3, 5 and 7. Our rule also asks the last node to be at full resolution,
which leaves 4.6e6 topologies (2.9e17 networks).
Encodings are plain JSON (never pickled); the digest hashes the choices alone.
"""

from __future__ import annotations

import dataclasses
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from vnas_monai.spaces.protocol import (
    DECIDED_MARGIN,
    JsonFileEncoding,
    RowLayout,
    cell_margins,
    choices_digest,
    decision_of,
)

from .rule import NO_SKIP, STEPS, levels_of, problems, repair

__all__ = [
    "BLOCK_TYPES", "CHANNEL_OPTIONS", "KERNEL_SIZES", "MAX_DOWNSAMPLINGS", "MBNASEncoding", "NO_SKIP", "NUM_NODES",
    "variable_names",
]

#: the options of ``channels.<l>``, in code order
CHANNEL_OPTIONS: tuple[str, ...] = tuple(STEPS)
#: the options of ``block.<l>`` (paper Fig. 1c: VGG, ResNet, DenseNet, Inception blocks), in code order
BLOCK_TYPES: tuple[str, ...] = ("vgg", "residual", "dense", "inception")
#: the options of ``kernel.<l>`` (see the module docstring)
KERNEL_SIZES: tuple[int, ...] = (3, 5, 7)
#: nodes of the paper's networks (§2.1)
NUM_NODES = 10
#: default bound on the resolution level: a 128 x 128 input (§2.3) is 8 x 8 after four halvings, as in U-Net
MAX_DOWNSAMPLINGS = 4
#: variable kind -> encoding field
_FIELDS = {"channels": "channels", "block": "blocks", "kernel": "kernels", "skip": "skips"}
_PARTS = tuple(_FIELDS.values())


def variable_names(num_nodes: int = NUM_NODES) -> list[str]:
    """The variable names of a ``num_nodes`` space, in the space's order (node by node)."""
    names = []
    for node in range(num_nodes):
        names += [f"channels.{node}", f"block.{node}", f"kernel.{node}"] + ([f"skip.{node}"] if node >= 2 else [])
    return names


def _check(name: str, values: Any, options: Sequence[Any], length: int | None) -> tuple:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise ValueError(f"{name} must be a list, one value per node, got {values!r}.")
    if length is not None and len(values) != length:
        raise ValueError(f"{name} must have {length} values (one per node), got {len(values)}: {list(values)}.")
    for node, v in enumerate(values):
        if isinstance(v, bool) or v not in options:
            raise ValueError(f"{name}[{node}] = {v!r} is not an option; choose one of {list(options)}.")
    return tuple(values)


@dataclass(frozen=True)
class MBNASEncoding(JsonFileEncoding):
    """One MB-NAS architecture (module docstring), valid or not: :func:`.rule.problems` says, :func:`.rule.repair`
    makes it valid; ``from_dict`` and the network builder refuse invalid ones.

    Args:
        channels: per node ``"down"``, ``"same"`` or ``"up"``.
        blocks: per node a name of :data:`BLOCK_TYPES`.
        kernels: per node a size of :data:`KERNEL_SIZES`.
        skips: per node ``-1`` (none) or a node index.
        max_downsamplings: the deepest level allowed (the patch size must be a multiple of ``2**level``).
        probabilities: optional ``{part: (nodes, options) table}``, parts and columns as :meth:`options`.
        meta: JSON-able extras (not part of the digest or of equality).

    Raises:
        ValueError: lists of different or zero length, or a value that is no option.
    """

    channels: tuple[str, ...]
    blocks: tuple[str, ...]
    kernels: tuple[int, ...]
    skips: tuple[int, ...]
    max_downsamplings: int = MAX_DOWNSAMPLINGS
    probabilities: dict[str, list[list[float]]] | None = field(default=None, compare=False, repr=False)
    meta: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    space: ClassVar[str] = "mbnas"
    JSON_NOUN: ClassVar[str] = "MB-NAS encoding"

    def __post_init__(self) -> None:
        n = len(self.channels) if isinstance(self.channels, Sequence) else None
        if not n:
            raise ValueError(f"channels must be a non-empty list, one value per node, got {self.channels!r}.")
        object.__setattr__(self, "channels", _check("channels", self.channels, CHANNEL_OPTIONS, n))
        object.__setattr__(self, "blocks", _check("blocks", self.blocks, BLOCK_TYPES, n))
        object.__setattr__(self, "kernels", _check("kernels", self.kernels, KERNEL_SIZES, n))
        object.__setattr__(self, "skips", _check("skips", self.skips, range(NO_SKIP, n), n))
        m = self.max_downsamplings
        if isinstance(m, bool) or not isinstance(m, int) or m < 0:
            raise ValueError(f"max_downsamplings must be a non-negative int, got {m!r}.")
        object.__setattr__(self, "meta", dict(self.meta or {}))

    # ----------------------------------------------------------------- constructors
    @classmethod
    def random(cls, seed: int | random.Random, num_nodes: int = NUM_NODES,
               max_downsamplings: int = MAX_DOWNSAMPLINGS, repaired: bool = True) -> MBNASEncoding:
        """Every variable uniform over its options (skips over every node index), then :func:`.rule.repair`
        (``repaired=False``: raw, possibly invalid)."""
        rng = seed if isinstance(seed, random.Random) else random.Random(seed)
        raw = cls(tuple(rng.choice(CHANNEL_OPTIONS) for _ in range(num_nodes)),
                  tuple(rng.choice(BLOCK_TYPES) for _ in range(num_nodes)),
                  tuple(rng.choice(KERNEL_SIZES) for _ in range(num_nodes)),
                  tuple(rng.randrange(NO_SKIP, num_nodes) for _ in range(num_nodes)), max_downsamplings)
        return repair(raw) if repaired else raw

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "MB-NAS encoding") -> MBNASEncoding:
        """Read :meth:`to_dict` back; other keys become ``meta``.

        Raises:
            ValueError: another space, missing or malformed lists, or an encoding the rule repairs (its problems).
        """
        if not isinstance(data, Mapping) or any(k not in data for k in _PARTS):
            raise ValueError(f"{source}: expected a JSON object with the lists {list(_PARTS)}.")
        if data.get("space", cls.space) != cls.space:
            raise ValueError(f"{source}: an encoding of space {data['space']!r}, not {cls.space!r}.")
        if "num_nodes" in data and data["num_nodes"] != len(data["channels"]):
            raise ValueError(f"{source}: num_nodes={data['num_nodes']} but {len(data['channels'])} channel values.")
        meta = {k: v for k, v in data.items()
                if k not in (*_PARTS, "space", "num_nodes", "max_downsamplings", "probabilities")}
        try:
            enc = cls(data["channels"], data["blocks"], data["kernels"], data["skips"],
                      data.get("max_downsamplings", MAX_DOWNSAMPLINGS), data.get("probabilities"), meta)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{source}: {e}") from None
        bad = problems(enc)
        if bad:
            raise ValueError(f"{source}: the encoding cannot build a network: {' '.join(bad)} "
                             "(vnas_monai.spaces.mbnas.repair makes it valid).")
        return enc

    @classmethod
    def from_probabilities(cls, probabilities: Mapping[str, Any], meta: Mapping[str, Any] | None = None
                           ) -> MBNASEncoding:
        """Each row's most probable option (ties: the first), repaired by the rule, keeping ``probabilities``
        (parts and columns as :meth:`options`); ``meta["max_downsamplings"]`` bounds the levels (default 4)."""
        meta = dict(meta or {})
        n = len(probabilities["channels"])
        tables = {part: [[float(v) for v in row] for row in probabilities[part]] for part in _PARTS}
        columns = {"channels": CHANNEL_OPTIONS, "blocks": BLOCK_TYPES, "kernels": KERNEL_SIZES,
                   "skips": (NO_SKIP, *range(max(n - 2, 0)))}
        picks = {}
        for part, rows in tables.items():
            if len(rows) != n or any(len(r) != len(columns[part]) for r in rows):
                raise ValueError(f"probabilities[{part!r}] must be {n} rows of {len(columns[part])} values.")
            picks[part] = [columns[part][max(range(len(r)), key=r.__getitem__)] for r in rows]
        raw = cls(picks["channels"], picks["blocks"], picks["kernels"], picks["skips"],
                  int(meta.pop("max_downsamplings", MAX_DOWNSAMPLINGS)), meta=meta)
        return dataclasses.replace(repair(raw), probabilities=tables)

    # ----------------------------------------------------------------- structure
    @property
    def num_nodes(self) -> int:
        return len(self.channels)

    def levels(self) -> list[int]:
        """The resolution level of every node (0 = full resolution)."""
        return levels_of(self.channels)

    def problems(self) -> list[str]:
        """Why this encoding cannot build a network (:func:`.rule.problems`; empty: it can)."""
        return problems(self)

    # ----------------------------------------------------------------- variables (VariableEncoding)
    def _parse(self, variable: str) -> tuple[str, int]:
        kind, _, index = str(variable).partition(".")
        if kind not in _FIELDS or not index.isdigit() or int(index) >= self.num_nodes or (
                kind == "skip" and int(index) < 2):
            raise ValueError(f"unknown variable {variable!r}; the variables are {variable_names(self.num_nodes)}.")
        return _FIELDS[kind], int(index)

    def value_of(self, variable: str) -> Any:
        """The current option of ``variable`` (e.g. ``"block.3"``)."""
        part, node = self._parse(variable)
        return getattr(self, part)[node]

    def variables(self) -> dict[str, list[Any]]:
        """Every variable and its options, node by node (``skip.<l>``: ``-1`` and nodes ``0 .. l - 2``)."""
        options: dict[str, list[Any]] = {}
        for name in variable_names(self.num_nodes):
            kind, node = name.split(".")
            options[name] = {"channels": list(CHANNEL_OPTIONS), "block": list(BLOCK_TYPES),
                             "kernel": list(KERNEL_SIZES)}.get(kind) or [NO_SKIP, *range(int(node) - 1)]
        return options

    def with_value(self, variable: str, option: Any) -> MBNASEncoding | None:
        """This encoding with ``variable`` set to ``option``, repaired by the rule; ``None`` where the repair would
        change ``option`` back (:func:`.rule.repair` with ``keep``).

        Raises:
            ValueError: an unknown variable, or an option it does not have.
        """
        part, node = self._parse(variable)
        if isinstance(option, bool) or option not in self.variables()[variable]:
            raise ValueError(f"{option!r} is not an option of {variable}; choose one of {self.variables()[variable]}.")
        values = list(getattr(self, part))
        values[node] = option
        changed = dataclasses.replace(self, **{part: tuple(values)}, probabilities=None, meta={})
        return repair(changed, keep=variable)

    def neighbours(self) -> list[MBNASEncoding]:
        """Every valid encoding one :meth:`with_value` away, once each (first by variable order), self excluded."""
        seen, out = {self.digest()}, []
        for name, options in self.variables().items():
            for option in options:
                nbr = self.with_value(name, option)
                if nbr is not None and nbr.digest() not in seen:
                    seen.add(nbr.digest())
                    out.append(nbr)
        return out

    # ----------------------------------------------------------------- protocol outputs
    def digest(self) -> str:
        """Stable hash of the four choice lists (not of ``max_downsamplings``, probabilities or meta)."""
        return choices_digest(self.space, {part: list(getattr(self, part)) for part in _PARTS})

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"space": self.space, "num_nodes": self.num_nodes,
                                "max_downsamplings": self.max_downsamplings,
                                **{part: list(getattr(self, part)) for part in _PARTS}}
        if self.probabilities is not None:
            data["probabilities"] = {k: [list(r) for r in v] for k, v in self.probabilities.items()}
        data.update({k: v for k, v in self.meta.items() if k not in data})
        return data

    def rows(self) -> dict[str, list[str]]:
        """Per part, each node's choice by name (skips ``"none"`` / ``"node <j>"``)."""
        return {"channels": list(self.channels), "blocks": list(self.blocks), "kernels": [str(k) for k in self.kernels],
                "skips": ["none" if s == NO_SKIP else f"node {s}" for s in self.skips]}

    def options(self) -> dict[str, list[str]]:
        """Per part, the option names in code order (the skip columns: none, node 0 .. node n - 3)."""
        return {"channels": list(CHANNEL_OPTIONS), "blocks": list(BLOCK_TYPES),
                "kernels": [str(k) for k in KERNEL_SIZES],
                "skips": ["none"] + [f"node {j}" for j in range(max(self.num_nodes - 2, 0))]}

    def layout(self) -> RowLayout:
        """Rows ``N0 .. N<n-1>`` per part; columns are option codes (the legend names them per part)."""
        options = self.options()
        parts = {part: [f"N{node}" for node in range(self.num_nodes)] for part in _PARTS}
        width = max(len(v) for v in options.values())
        legend = "; ".join(f"{part}: " + ", ".join(f"{i}={o}" for i, o in enumerate(opts))
                           for part, opts in options.items())
        return RowLayout(parts, [str(i) for i in range(width)],
                         [self.num_nodes * (i + 1) for i in range(len(_PARTS) - 1)], legend)

    def margins(self) -> dict[str, list[float]] | None:
        return None if self.probabilities is None else {k: cell_margins(v) for k, v in self.probabilities.items()}

    def decision(self, threshold: float = DECIDED_MARGIN) -> dict[str, Any] | None:
        margins = self.margins()
        return None if margins is None else decision_of(margins, threshold)

    def summary(self) -> str:
        """``N0 same vgg3 | N1 down vgg3 | ... | N8 up vgg3 +N0 | N9 same vgg3`` (``+Nj``: skip from node j)."""
        return " | ".join(f"N{node} {c} {b}{k}" + ("" if s == NO_SKIP else f" +N{s}")
                          for node, (c, b, k, s) in enumerate(zip(self.channels, self.blocks, self.kernels,
                                                                  self.skips)))

    def plot(self, path: str | os.PathLike, title: str | None = None) -> Path:
        """The network figure (:func:`vnas_monai.spaces.mbnas.figures.plot_encoding`) as a PNG at ``path``."""
        from .figures import plot_encoding

        return plot_encoding(self, path, title)

    draw = plot
