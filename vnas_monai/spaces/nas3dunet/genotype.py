"""The NAS-3D-U-Net genotype: the searched downward and upward cells as plain JSON in the paper's op names.

Wang, BraTS 2019, §2.4 ("Searching Strategy") and Fig. 6: each HM keeps the op of highest softmax(alpha), and each
node keeps its two best HMs (ranked by that op's probability; ties go to the earlier source). The paper ranks HMs of
different tables on one scale, so at uniform alphas an NHM (1/5) outranks a DHM (1/6) and a UHM (1/4) an NHM: the
ranking only means something once the search has moved the alphas. A genotype is::

    {"space": "nas3dunet",
     "down": [{"x0": "d_conv", "x1": "max_pool"}, {"x1": "d_se_conv", "node0": "conv"}, {...}],
     "up":   [{"x0": "u_conv", "x1": "u_dep_conv"}, {...}, {...}]}

one ``{source: op}`` object of exactly two entries per node (sources ``x0``, ``x1``, ``node0`` .. ``node{i-1}``;
ops from the DHM / UHM table on ``x0`` / ``x1`` and from the NHM table between nodes), optionally with the search's
``probabilities`` (the :data:`PARTS` tables, rows as :meth:`Genotype.layout`). It never holds a tensor or a pickle.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vnas_monai.spaces.protocol import (
    DECIDED_MARGIN,
    JsonFileEncoding,
    RowLayout,
    cell_margins,
    choices_digest,
    decision_of,
)

from .tables import (
    CELL_KINDS,
    COLUMN_LABELS,
    HM_NAMES,
    NUM_NODES,
    OP_TABLES,
    edge_kind,
    edges,
    inner_edges,
    input_edges,
    sources,
)

__all__ = ["Genotype", "PARTS", "SPACE"]

SPACE = "nas3dunet"
_CELL_LABEL = {"down": "DC", "up": "UC"}
#: probability part -> (cell kind, its edges (rows), HM kind (columns))
PARTS: dict[str, tuple[str, list[tuple[int, str]], str]] = {
    "down": ("down", input_edges(), "down"),
    "down_normal": ("down", inner_edges(), "normal"),
    "up": ("up", input_edges(), "up"),
    "up_normal": ("up", inner_edges(), "normal"),
}


def _check_cell(cell: str, nodes: Any, where: str) -> list[dict[str, str]]:
    if isinstance(nodes, (str, bytes, Mapping)) or not isinstance(nodes, Sequence) or len(nodes) != NUM_NODES:
        raise ValueError(f"{where}['{cell}'] must be a list of {NUM_NODES} nodes, each an object {{input: op}} of "
                         f"its two hybrid modules, got {nodes!r}.")
    out = []
    for i, node in enumerate(nodes):
        key = f"{where}['{cell}'][{i}]"
        if not isinstance(node, Mapping) or len(node) != 2:
            raise ValueError(f"{key} must map exactly 2 inputs to ops (each node keeps its two best hybrid modules), "
                             f"got {node!r}.")
        allowed = sources(i)
        for source, op in node.items():
            if source not in allowed:
                raise ValueError(f"{key} has input {source!r}; node{i} may take {', '.join(allowed)}.")
            kind = edge_kind(cell, source)
            if not isinstance(op, str) or op not in OP_TABLES[kind]:
                raise ValueError(f"{key}['{source}'] = {op!r} is not a {HM_NAMES[kind]} op; known {HM_NAMES[kind]} "
                                 f"ops: {', '.join(OP_TABLES[kind])}.")
        out.append({s: str(node[s]) for s in allowed if s in node})  # canonical order
    return out


def _check_probabilities(probabilities: Any, where: str) -> dict[str, list[list[float]]]:
    if not isinstance(probabilities, Mapping) or set(probabilities) != set(PARTS):
        got = sorted(probabilities) if isinstance(probabilities, Mapping) else type(probabilities).__name__
        raise ValueError(f"{where}['probabilities'] must have exactly the tables {list(PARTS)}, got {got}.")
    out = {}
    for part, (_, rows, kind) in PARTS.items():
        table = probabilities[part]
        width = len(OP_TABLES[kind])
        if isinstance(table, (str, bytes)) or not isinstance(table, Sequence) or len(table) != len(rows):
            raise ValueError(f"{where}['probabilities']['{part}'] must have {len(rows)} rows of {width} values.")
        out[part] = []
        for r, row in enumerate(table):
            vals = [float(v) for v in row] if isinstance(row, Sequence) and not isinstance(row, str) else None
            if vals is None or len(vals) != width or any(not math.isfinite(v) or v < 0 for v in vals):
                raise ValueError(f"{where}['probabilities']['{part}'][{r}] must be {width} finite non-negative "
                                 f"values ({', '.join(OP_TABLES[kind])}), got {row!r}.")
            out[part].append(vals)
    return out


class Genotype(JsonFileEncoding):
    """A discrete NAS-3D-U-Net architecture: the two kept HMs (source -> op) of every node of the DC and the UC.

    Args:
        down: 3 nodes of the downward cell, each ``{source: op}`` with two entries (module docstring).
        up: 3 nodes of the upward cell.
        probabilities: optional search probabilities ``{part: rows}`` (:data:`PARTS`).
        meta: optional JSON-able extras.

    Raises:
        ValueError: a malformed cell or table, naming the offending key.
    """

    JSON_NOUN = "genotype"

    space = SPACE

    def __init__(self, down: Sequence[Mapping[str, str]], up: Sequence[Mapping[str, str]],
                 probabilities: Mapping[str, Any] | None = None, meta: Mapping[str, Any] | None = None,
                 where: str = "genotype") -> None:
        self.cells = {"down": _check_cell("down", down, where), "up": _check_cell("up", up, where)}
        self.probabilities = None if probabilities is None else _check_probabilities(probabilities, where)
        self.meta: dict[str, Any] = dict(meta or {})

    @property
    def down(self) -> list[dict[str, str]]:
        return self.cells["down"]

    @property
    def up(self) -> list[dict[str, str]]:
        return self.cells["up"]

    # ----------------------------------------------------------------- constructors
    @classmethod
    def from_dict(cls, data: Any, source: str = "genotype") -> Genotype:
        if not isinstance(data, Mapping):
            raise ValueError(f"{source}: expected a JSON object with 'down' and 'up' cells, got "
                             f"{type(data).__name__}.")
        if data.get("space", SPACE) != SPACE:
            raise ValueError(f"{source}: 'space' is {data['space']!r}, not {SPACE!r}.")
        missing = [k for k in CELL_KINDS if k not in data]
        if missing:
            raise ValueError(f"{source}: missing key(s) {missing}: a genotype has a 'down' and an 'up' cell.")
        meta = {k: v for k, v in data.items() if k not in ("space", "down", "up", "probabilities")}
        return cls(data["down"], data["up"], data.get("probabilities"), meta, where=source)

    @classmethod
    def from_probabilities(cls, probabilities: Mapping[str, Any], meta: Mapping[str, Any] | None = None
                           ) -> Genotype:
        """The paper's discretisation (``derive``): each HM's most probable op, then each node's two HMs whose op
        is most probable (ties: the earlier source); keeps ``probabilities``."""
        probs = _check_probabilities(probabilities, "genotype")
        cells: dict[str, list[dict[str, str]]] = {}
        for cell in CELL_KINDS:
            ranked: list[list[tuple[float, int, str, str]]] = [[] for _ in range(NUM_NODES)]
            for part, (kind_cell, rows, kind) in PARTS.items():
                if kind_cell != cell:
                    continue
                for (node, source), row in zip(rows, probs[part]):
                    best = max(range(len(row)), key=row.__getitem__)
                    ranked[node].append((row[best], sources(node).index(source), source, OP_TABLES[kind][best]))
            cells[cell] = []
            for cands in ranked:
                kept = sorted(cands, key=lambda t: (-t[0], t[1]))[:2]
                cells[cell].append({s: op for _, _, s, op in sorted(kept, key=lambda t: t[1])})
        return cls(cells["down"], cells["up"], probs, meta)

    @classmethod
    def random(cls, seed: int) -> Genotype:
        """A uniformly random genotype (two random sources per node, a random op each), from ``seed``."""
        rng = random.Random(seed)
        cells = {}
        for cell in CELL_KINDS:
            cells[cell] = [{s: rng.choice(OP_TABLES[edge_kind(cell, s)]) for s in rng.sample(sources(i), 2)}
                           for i in range(NUM_NODES)]
        return cls(cells["down"], cells["up"])

    @classmethod
    def from_codes(cls, codes: Sequence[int]) -> Genotype:
        """From :attr:`codes` (e.g. a network's ``arch_code`` buffer)."""
        codes = [int(c) for c in codes]
        n = len(edges())
        if len(codes) != 2 * n:
            raise ValueError(f"a genotype has {2 * n} codes (one per edge of the DC, then of the UC), got "
                             f"{len(codes)}.")
        cells: dict[str, list[dict[str, str]]] = {}
        for k, cell in enumerate(CELL_KINDS):
            cells[cell] = [{} for _ in range(NUM_NODES)]
            for (node, source), code in zip(edges(), codes[k * n:(k + 1) * n]):
                table = OP_TABLES[edge_kind(cell, source)]
                if not 0 <= code <= len(table):
                    raise ValueError(f"code {code} of {_CELL_LABEL[cell]} edge node{node}_{source} is not 0 (pruned) "
                                     f"or 1 .. {len(table)} ({', '.join(table)}).")
                if code:
                    cells[cell][node][source] = table[code - 1]
        return cls(cells["down"], cells["up"], where="codes")

    # ----------------------------------------------------------------- views
    @property
    def codes(self) -> list[int]:
        """One int per edge (9 of the DC, then 9 of the UC): 0 if pruned, else 1 + the op's index in its table."""
        out = []
        for cell in CELL_KINDS:
            for node, source in edges():
                op = self.cells[cell][node].get(source)
                out.append(0 if op is None else 1 + OP_TABLES[edge_kind(cell, source)].index(op))
        return out

    def hms(self, cell: str) -> dict[str, list[str]]:
        """The discrete cell's HMs: edge name -> [op] (the ``hms`` of :class:`.cells.Cell`)."""
        return {f"node{i}_{s}": [op] for i, node in enumerate(self.cells[cell]) for s, op in node.items()}

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"space": SPACE, "down": [dict(n) for n in self.down], "up": [dict(n) for n in self.up]}
        if self.probabilities is not None:
            data["probabilities"] = {k: [list(r) for r in v] for k, v in self.probabilities.items()}
        data.update({k: v for k, v in self.meta.items() if k not in data})
        return data

    def digest(self) -> str:
        """Stable hash of the kept HMs alone (not of probabilities or meta)."""
        return choices_digest(SPACE, {"down": self.down, "up": self.up})

    def rows(self) -> dict[str, list[str]]:
        """Per probability table, the op each row's HM kept, ``"none"`` where the node pruned it."""
        return {part: [self.cells[cell][node].get(source, "none") for node, source in rows]
                for part, (cell, rows, _) in PARTS.items()}

    @staticmethod
    def options() -> dict[str, list[str]]:
        """Each table's op names, in code (column) order."""
        return {part: list(OP_TABLES[kind]) for part, (_, _, kind) in PARTS.items()}

    @staticmethod
    def layout() -> RowLayout:
        """Rows ``DC node0 <- x0`` .. ``UC node2 <- node1`` by table; columns aligned across the three op tables."""
        parts = {part: [f"{_CELL_LABEL[cell]} node{n} <- {s}" for n, s in rows]
                 for part, (cell, rows, _) in PARTS.items()}
        separators, total = [], 0
        for names in parts.values():
            total += len(names)
            separators.append(total)
        legend = "; ".join(f"{HM_NAMES[k]}: {', '.join(f'{i}={op}' for i, op in enumerate(OP_TABLES[k]))}"
                           for k in OP_TABLES)
        return RowLayout(parts, list(COLUMN_LABELS), separators[:-1], legend)

    def margins(self) -> dict[str, list[float]] | None:
        return None if self.probabilities is None else {k: cell_margins(v) for k, v in self.probabilities.items()}

    def decision(self, threshold: float = DECIDED_MARGIN) -> dict[str, Any] | None:
        margins = self.margins()
        return None if margins is None else decision_of(margins, threshold)

    def summary(self) -> str:
        """``DC [node0 = d_conv(x0) + max_pool(x1); ...] UC [...]`` (Fig. 6 as text)."""
        def cell(c: str) -> str:
            return "; ".join(f"node{i} = " + " + ".join(f"{op}({s})" for s, op in n.items())
                             for i, n in enumerate(self.cells[c]))

        return f"DC [{cell('down')}] UC [{cell('up')}]"

    def plot(self, path: str | os.PathLike, title: str | None = None) -> Path:
        """The derived cells as in the paper's Fig. 6 (:func:`.figures.plot_cells`), a PNG at ``path``."""
        from .figures import plot_cells

        return plot_cells(self, path, title)

    def neighbours(self) -> list[Genotype]:
        """Every genotype one variable away, DC first: one kept HM's op changed within its table, or (nodes 1 and
        2) one kept HM moved to a source the node does not use, its op carried over by table column (conv ->
        d_conv / u_conv, identity -> max_pool; the UHM table has no fifth column: u_conv)."""
        out = []
        for cell in CELL_KINDS:
            for i, node in enumerate(self.cells[cell]):
                for source, op in node.items():
                    table = OP_TABLES[edge_kind(cell, source)]
                    for other in table:
                        if other != op:
                            out.append(self._with(cell, i, {**node, source: other}))
                    col = table.index(op)
                    for new in sources(i):
                        if new in node:
                            continue
                        new_table = OP_TABLES[edge_kind(cell, new)]
                        moved = {s: o for s, o in node.items() if s != source}
                        moved[new] = new_table[col] if col < len(new_table) else new_table[0]
                        out.append(self._with(cell, i, moved))
        return out

    def _with(self, cell: str, node: int, value: Mapping[str, str]) -> Genotype:
        cells = {c: [dict(n) for n in self.cells[c]] for c in CELL_KINDS}
        cells[cell][node] = dict(value)
        return Genotype(cells["down"], cells["up"])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Genotype) and self.cells == other.cells

    def __hash__(self) -> int:
        return hash(tuple(self.codes))

    def __repr__(self) -> str:
        return f"Genotype({self.summary()})"
