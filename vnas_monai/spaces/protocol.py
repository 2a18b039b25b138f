"""The search-space protocol: what a search strategy may assume of a space (issue 15).

A *space* is one package that defines three things, and nothing outside it knows its cell counts or op tables:

* an :class:`Encoding`: one discrete architecture, plain JSON, with a stable hash (the key of a trial archive),
  its row layout and op names (for logs and figures), and its neighbours (one variable changed: local search);
* a :class:`DifferentiableSpace` (optional): a supernet whose architecture parameters are ``nn.Parameter`` s in its
  state dict, kept apart from the weights, with the probabilities and the discretisation (``derive``);
* a builder of the discrete network from an encoding (:class:`NetworkBuilder`);
* what a MONAI bundle of that network needs (:class:`BundleNetwork`, optional): the ``network_def`` of a config,
  the patch divisibility and the words of the bundle's documents; the MONAI Label export
  (:func:`vnas_monai.export.export_bundle`) builds any space's bundle from it.

Strategies know only this protocol: the differentiable bilevel trainer
(:class:`vnas_monai.engine.VNASSearchTrainer` with its :class:`vnas_monai.engine.Architect`) needs a
:class:`DifferentiableSpace`; a local search needs ``neighbours`` and ``digest`` and a builder. Spaces are
registered by name in :mod:`vnas_monai.spaces` (DARTS keeps the same split between its search space and its
architect; timm keeps models in a name registry). A local search visits one variable at a time
(:func:`neighbours_by_variable`): a space may name its variables (:class:`VariableEncoding`, optional).
"""

from __future__ import annotations

import hashlib
import json
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch

__all__ = [
    "BundleNetwork", "DECIDED_MARGIN", "DifferentiableSpace", "Encoding", "JsonFileEncoding", "NetworkBuilder",
    "RowLayout", "VariableEncoding", "cell_margins", "choices_digest", "decision_of", "neighbours_by_variable",
]

#: a search is *decided* when the median over its cells of (best - second-best probability) reaches this; below it
#: the argmax of several cells is noise (issue 14)
DECIDED_MARGIN = 0.2


def choices_digest(space: str, choices: Mapping[str, Any]) -> str:
    """SHA-1 (hex, 16 digits) of a space name and its choices as canonical JSON (sorted keys, no spaces): the same on
    every run and machine."""
    text = json.dumps({"space": space, "choices": choices}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


class JsonFileEncoding:
    """JSON text and files of an encoding that has ``to_dict()`` and ``from_dict(data, source)``: the one place where
    an encoding becomes JSON (written atomically) and back, with errors that name the file. ``JSON_NOUN`` names the
    encoding in them."""

    JSON_NOUN = "encoding"

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent)  # type: ignore[attr-defined]

    def save(self, path: Any) -> Any:
        """Write plain JSON atomically (temporary file, then rename); returns the path."""
        from pathlib import Path

        from vnas_monai.io import atomic_write_text

        atomic_write_text(path, self.to_json() + "\n")
        return Path(path)

    @classmethod
    def from_json(cls, text: str, source: str | None = None) -> Any:
        source = source or f"{cls.JSON_NOUN} JSON"
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{source} is not valid JSON: {e}") from None
        return cls.from_dict(data, source)  # type: ignore[attr-defined]

    @classmethod
    def load(cls, path: Any) -> Any:
        """Read a JSON file written by the encoding's ``save``."""
        from pathlib import Path

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{cls.JSON_NOUN} file {path} does not exist.")
        return cls.from_json(path.read_text(), source=str(path))

    @classmethod
    def resolve(cls, spec: Any) -> Any:
        """Accept an encoding of this class, its dict, or the path of its JSON file (a space with presets extends
        this)."""
        if isinstance(spec, cls):
            return spec
        if isinstance(spec, Mapping):
            return cls.from_dict(spec)  # type: ignore[attr-defined]
        return cls.load(spec)


def cell_margins(rows: Sequence[Sequence[float]]) -> list[float]:
    """Best minus second-best probability of each row (cell) of a probability table."""
    margins = []
    for row in rows:
        top = sorted((float(v) for v in row), reverse=True)
        margins.append(top[0] - top[1] if len(top) > 1 else 1.0)
    return margins


def decision_of(margins: Mapping[str, Sequence[float]], threshold: float = DECIDED_MARGIN) -> dict[str, Any]:
    """How decided a search is from its cells' margins (all parts together): median and minimum margin, and whether
    the median reaches ``threshold``."""
    flat = [float(m) for part in margins.values() for m in part]
    if not flat:
        raise ValueError("decision_of needs at least one cell margin.")
    median = statistics.median(flat)
    return {"median_margin": median, "min_margin": min(flat), "threshold": float(threshold),
            "decided": median >= threshold}


@dataclass(frozen=True)
class RowLayout:
    """How logs and figures lay out a space's choice probabilities.

    Attributes:
        parts: part name -> one label per cell, in row order (e.g. ``{"encoder": ["E1 (stage 1)", ...]}``); the
            parts' probabilities are ``(cells, options)`` tables under the same names.
        options: the legend label of each candidate, in code order (e.g. ``["2D", "3D", "P3D"]``).
        separators: row counts from the top after which figures draw a line (stage boundaries).
        code_legend: how a log line reads the codes (e.g. ``"0=2D, 1=3D, 2=P3D"``).
    """

    parts: dict[str, list[str]]
    options: list[str]
    separators: list[int] = field(default_factory=list)
    code_legend: str = ""

    @property
    def num_rows(self) -> int:
        return sum(len(v) for v in self.parts.values())


@runtime_checkable
class Encoding(Protocol):
    """One discrete architecture of a space."""

    #: the registered name of the space
    space: str
    #: JSON-able extras written with the encoding (the logger adds history, epoch, margins, decision)
    meta: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (the space's ``from_dict`` reads it back); a ``space`` key names the space (files without
        one are V-NAS's)."""

    @classmethod
    def from_probabilities(cls, probabilities: Mapping[str, Any], meta: Mapping[str, Any] | None = None) -> Encoding:
        """The space's discretisation of a probability table (rows as :meth:`rows`), keeping it: fold aggregation
        (:func:`vnas_monai.spaces.aggregate.aggregate`)."""

    def digest(self) -> str:
        """Stable hash of the choices alone (see :func:`choices_digest`)."""

    def rows(self) -> dict[str, list[str]]:
        """The chosen op name of every cell, grouped in rows (e.g. ``{"encoder": [...], "decoder": [...]}``)."""

    def options(self) -> dict[str, list[str]]:
        """The candidate names of each row, in code order (columns of the probability tables and figures)."""

    def neighbours(self) -> Sequence[Encoding]:
        """Every valid encoding that differs in exactly one variable."""

    def layout(self) -> RowLayout:
        """The row layout of the space's probability tables (the same for every encoding of the space)."""

    def margins(self) -> dict[str, list[float]] | None:
        """Each cell's best minus second-best probability per part (``None`` without probabilities)."""

    def decision(self) -> dict[str, Any] | None:
        """:func:`decision_of` the margins (``None`` without probabilities)."""

    def save(self, path: Any) -> Any:
        """Write :meth:`to_dict` (with ``meta``) as JSON, atomically."""

    def summary(self) -> str:
        """One line for logs: the choices in the paper's notation."""

    def plot(self, path: Any, title: str | None = None) -> Any:
        """Draw the architecture (the space's own figure) as a PNG at ``path``, atomically; returns the path."""


@runtime_checkable
class VariableEncoding(Protocol):
    """Optional for an :class:`Encoding`: its variables by name, for a local search that tries every option of one
    variable (MB-NAS, Bosma et al. 2022, §2.3; issue 17). Without it, :func:`neighbours_by_variable` groups
    ``neighbours()`` by the ``to_dict()`` values they change."""

    def variables(self) -> dict[str, list[Any]]:
        """Each variable's name and its options (JSON values) in the space's order; the same names on every encoding
        of the space."""

    def with_value(self, variable: str, option: Any) -> Encoding | None:
        """This encoding with ``variable`` set to ``option``, as the space's validity rule repairs it; ``None`` where
        the rule refuses it."""


def _leaves(data: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a.0": ..., "b.c": ...}``: the scalars of nested JSON by path."""
    if isinstance(data, Mapping):
        items: Any = data.items()
    elif isinstance(data, (list, tuple)):
        items = enumerate(data)
    else:
        return {prefix: data}
    out: dict[str, Any] = {}
    for key, value in items:
        out.update(_leaves(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def neighbours_by_variable(encoding: Any) -> dict[str, list[tuple[Any, Any]]]:
    """The one-variable neighbours of ``encoding`` grouped by variable: ``{name: [(option, neighbour), ...]}``, in the
    space's order, without the encoding itself (MB-NAS's neighbourhood of one variable, §2.3).

    A :class:`VariableEncoding` gives its names and ``with_value``; any other encoding's ``neighbours()`` are grouped
    by the ``to_dict()`` scalars each one changes (``meta``, ``probabilities`` and ``space`` left out): the name joins
    their paths with ``+`` (V-NAS: ``"encoder.3+paper.encoder"``), the option is the value at the first. That is exact
    when each variable is its own scalars; a space whose validity rule repairs other variables implements
    :class:`VariableEncoding`, or a repaired neighbour would count as a variable of its own.
    """
    own = encoding.digest()
    groups: dict[str, list[tuple[Any, Any]]] = {}
    if isinstance(encoding, VariableEncoding):
        for name, options in encoding.variables().items():
            changed = [(o, n) for o in options if (n := encoding.with_value(name, o)) is not None and n.digest() != own]
            groups[name] = changed
        return groups
    ignored = {"meta", "probabilities", "space", *getattr(encoding, "meta", {})}

    def leaves(enc: Any) -> dict[str, Any]:
        return _leaves({k: v for k, v in enc.to_dict().items() if k not in ignored})

    base, missing = leaves(encoding), object()
    for nbr in encoding.neighbours():
        if nbr.digest() == own:
            continue
        other = leaves(nbr)
        paths = sorted(p for p in base.keys() | other.keys() if base.get(p, missing) != other.get(p, missing))
        if paths:
            groups.setdefault("+".join(paths), []).append((other.get(paths[0]), nbr))
    return groups


@runtime_checkable
class DifferentiableSpace(Protocol):
    """A supernet: every encoding of the space in one ``nn.Module``, weighted by architecture parameters.

    ``arch_parameters()`` and ``weight_parameters()`` are disjoint and together are ``parameters()``; the
    architecture parameters are in the state dict; ``mix`` is the "Mix" baseline (architecture frozen uniform).
    """

    mix: bool

    def arch_parameters(self) -> list[torch.nn.Parameter]: ...

    def weight_parameters(self) -> list[torch.nn.Parameter]: ...

    def arch_probabilities(self) -> dict[str, torch.Tensor]:
        """Detached probabilities per row, ``(cells, options)`` each, rows as :meth:`Encoding.rows`."""

    def derive(self) -> Encoding:
        """The discrete encoding (with its probabilities) the current architecture parameters give."""


class NetworkBuilder(Protocol):
    """``builder(encoding, **network_kwargs) -> nn.Module``: the discrete network, whose module names are the
    supernet's, so that weights move between them by ``state_dict``."""

    def __call__(self, encoding: Any, **network_kwargs: Any) -> torch.nn.Module: ...


@dataclass(frozen=True)
class BundleNetwork:
    """How a MONAI bundle config builds a space's discrete network, and how the bundle's documents name it.

    The MONAI Label export writes ``network_def(...)`` into the exported ``configs/*.json``, builds it the same way
    (MONAI's ``ConfigParser``) to check the weights, and refuses patch sizes that are not multiples of ``divisor``.

    Attributes:
        title: the space's short name in the configs' ``_desc_`` and the documents (e.g. ``"V-NAS"``).
        network_def: ``network_def(architecture) -> dict``: the config entry of the discrete network, a
            ``"_target_"`` (dotted path of the network class or builder) and its keyword arguments, which may refer to
            the bundle keys ``@in_channels``, ``@num_classes`` and ``@init_filters`` (the stem width); ``architecture``
            is the reference to pass on (``"@arch_file"``: the path of the bundle's ``models/arch.json``; the export's
            own check passes the encoding object itself), so the target must accept both.
        divisor: every spatial size of the network's input (training patch, sliding window) is a multiple of it.
        description: one sentence on the network, for ``metadata.json`` when the source bundle has none.
        references: the citations of the space, for ``metadata.json`` when the source bundle has none.
        notes: extra lines of the exported ``docs/README.md``'s model section (what the network guarantees).
        onnx_overrides: command-line overrides of ``network_def`` that MONAI's ``onnx_export`` of the network needs
            (written into the README's ONNX command).
        settings_keys: keys of the training run's ``settings.json`` beyond the common ones that the export passes
            on to ``output_labels`` and ``adapt_config`` (e.g. a normalisation's statistics).
        output_labels: ``output_labels(settings) -> {"<value>": name}``: the label values the exported inference
            writes and their names (metadata ``channel_def``), for a network whose outputs are not one softmax
            channel per label (e.g. sigmoid regions); ``None``: the run's class names, channels 0 .. N-1.
        adapt_config: ``adapt_config(name, config, settings) -> config``: the space's changes to an exported config
            (``"inference"``, ``"train"``, ``"metadata"``) built for a softmax network (e.g. its own preprocessing,
            activation, loss); ``None``: the configs as built. A changed preprocessing rewrites the metadata's
            ``image_classes``, which the exported README's input line repeats.
        training: ``training(settings) -> str``: the exported README's account of ``configs/train.json`` for a space
            whose ``adapt_config`` changes its recipe; ``None``: the default recipe's account.
        run_aliases: ``(export setting, run setting)`` pairs: the names under which the space's training runs record
            export settings (e.g. MB-NAS's stem width ``init_channels`` for ``init_filters``); the export reads a
            setting from its alias when the run lacks the setting itself.
    """

    title: str
    network_def: Callable[[str], Mapping[str, Any]]
    divisor: int = 1
    description: str = ""
    references: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    onnx_overrides: str = ""
    settings_keys: tuple[str, ...] = ()
    output_labels: Callable[[Mapping[str, Any]], Mapping[str, str]] | None = None
    adapt_config: Callable[[str, dict, Mapping[str, Any]], dict] | None = None
    training: Callable[[Mapping[str, Any]], str] | None = None
    run_aliases: tuple[tuple[str, str], ...] = ()
