"""The NAS-3D-U-Net op tables and cell wiring, as names only (no torch): what a genotype may say.

Wang, "Neural Architecture Search for Gliomas Segmentation on Multimodal Magnetic Resonance Imaging", BraTS 2019,
Table 1 and Fig. 5. Three kinds of hybrid module (HM):

- ``"down"`` (DHM, stride 2): d_conv, d_dil_conv, d_dep_conv, d_se_conv, max_pool, avg_pool;
- ``"up"`` (UHM, transposed, x2): u_conv, u_dil_conv, u_dep_conv, u_se_conv;
- ``"normal"`` (NHM, stride 1): conv, dil_conv, dep_conv, se_conv, identity.

The tables are aligned by column (conv, dil_conv, dep_conv, se_conv, then the parameter-free ops), which the
probability figures use as their legend.

A cell (Fig. 5) has the inputs ``x0`` (a skip from further back) and ``x1`` (the previous cell) and
:data:`NUM_NODES` = 3 nodes; node ``i`` may take ``x0``, ``x1`` and ``node0`` .. ``node{i-1}``, so it holds 2, 3 and 4
HMs before discretisation (9 per cell). The edge of node ``i`` from source ``s`` is named ``node{i}_{s}``. HMs on the
cell inputs are of the cell's kind (DHM in a downward cell, UHM in an upward cell); HMs between nodes are NHMs.
"""

from __future__ import annotations

__all__ = [
    "CELL_KINDS",
    "COLUMN_LABELS",
    "DOWN_OPS",
    "HM_NAMES",
    "INPUTS",
    "NORMAL_OPS",
    "NUM_NODES",
    "OP_TABLES",
    "UP_OPS",
    "check_op",
    "edge_key",
    "edge_kind",
    "edges",
    "input_edges",
    "inner_edges",
    "sources",
]

DOWN_OPS: tuple[str, ...] = ("d_conv", "d_dil_conv", "d_dep_conv", "d_se_conv", "max_pool", "avg_pool")
UP_OPS: tuple[str, ...] = ("u_conv", "u_dil_conv", "u_dep_conv", "u_se_conv")
NORMAL_OPS: tuple[str, ...] = ("conv", "dil_conv", "dep_conv", "se_conv", "identity")

#: HM kind -> op names, in code order (column ``k`` of a probability table is op ``k``)
OP_TABLES: dict[str, tuple[str, ...]] = {"down": DOWN_OPS, "up": UP_OPS, "normal": NORMAL_OPS}
#: the paper's name of each HM kind
HM_NAMES: dict[str, str] = {"down": "DHM", "up": "UHM", "normal": "NHM"}
#: the legend of column ``k`` across the three tables
COLUMN_LABELS: tuple[str, ...] = ("conv", "dil_conv", "dep_conv", "se_conv", "max_pool | identity", "avg_pool")

#: downward cell (DC) and upward cell (UC): the kind of their input HMs
CELL_KINDS: tuple[str, ...] = ("down", "up")
INPUTS: tuple[str, ...] = ("x0", "x1")
NUM_NODES = 3


def sources(node: int) -> tuple[str, ...]:
    """What node ``node`` may take: ``x0``, ``x1`` and the earlier nodes."""
    if not 0 <= node < NUM_NODES:
        raise ValueError(f"a cell has nodes 0 .. {NUM_NODES - 1}, got node {node}.")
    return INPUTS + tuple(f"node{j}" for j in range(node))


def edge_key(node: int, source: str) -> str:
    """The module name of the HM of ``node`` on ``source`` (e.g. ``"node2_x1"``)."""
    return f"node{node}_{source}"


def edges() -> list[tuple[int, str]]:
    """Every (node, source) of a cell, node by node (9 for 3 nodes)."""
    return [(i, s) for i in range(NUM_NODES) for s in sources(i)]


def input_edges() -> list[tuple[int, str]]:
    """The edges on ``x0`` / ``x1`` (rows of the cell kind's table): node0_x0, node0_x1, node1_x0, ... (6)."""
    return [(i, s) for i, s in edges() if s in INPUTS]


def inner_edges() -> list[tuple[int, str]]:
    """The edges between nodes (rows of the NHM table): node1_node0, node2_node0, node2_node1 (3)."""
    return [(i, s) for i, s in edges() if s not in INPUTS]


def edge_kind(cell: str, source: str) -> str:
    """The HM kind of an edge from ``source`` in a ``cell`` (``"down"`` / ``"up"``) cell."""
    if cell not in CELL_KINDS:
        raise ValueError(f"unknown cell kind {cell!r}; known: {', '.join(CELL_KINDS)}.")
    return cell if source in INPUTS else "normal"


def check_op(kind: str, name: str) -> str:
    """``name`` if it is an op of the ``kind`` table.

    Raises:
        ValueError: an unknown kind or op, listing the known names.
    """
    if kind not in OP_TABLES:
        raise ValueError(f"unknown hybrid-module kind {kind!r}; known: {', '.join(OP_TABLES)}.")
    if not isinstance(name, str) or name not in OP_TABLES[kind]:
        raise ValueError(f"{name!r} is not a {HM_NAMES[kind]} op; known {HM_NAMES[kind]} ops: "
                         f"{', '.join(OP_TABLES[kind])}.")
    return name
