"""The named tables of V-NAS candidate operations (paper Eq. 1 and Eq. 3).

Each candidate is the (X, Y) pair of kernels of a cell's two searchable conv layers, written (x, y, z) with z the
slice axis. Code ``i`` in an architecture means ``OP_NAMES[i]``: 0 = ``"2d"``, 1 = ``"3d"``, 2 = ``"p3d"``.
"""

from __future__ import annotations

from collections.abc import Mapping

from .encoding import OP_NAMES

__all__ = ["ENCODER_CANDIDATES", "DECODER_CANDIDATES", "get_candidate", "op_name"]

Kernel = tuple[int, int, int]

#: Encoder bottleneck cells E0, E1, E2: [X; Y] between the 1x1x1 reduce and expand convs (Eq. 1).
ENCODER_CANDIDATES: Mapping[str, tuple[Kernel, Kernel]] = {
    "2d": ((3, 3, 1), (1, 1, 1)),
    "3d": ((3, 3, 3), (1, 1, 1)),
    "p3d": ((3, 3, 1), (1, 1, 3)),
}

#: Decoder dense-layer cells D0, D1, D2: [X; Y] after each dense layer's 1x1x1 bottleneck (Eq. 3).
DECODER_CANDIDATES: Mapping[str, tuple[Kernel, Kernel]] = {
    "2d": ((3, 3, 1), (3, 3, 1)),
    "3d": ((3, 3, 3), (3, 3, 3)),
    "p3d": ((3, 3, 1), (1, 1, 3)),
}

_TABLES = {"encoder": ENCODER_CANDIDATES, "decoder": DECODER_CANDIDATES}


def op_name(op: int | str) -> str:
    """Normalise a candidate given as a code (0, 1, 2) or a name ("2d", "3d", "p3d")."""
    if isinstance(op, str):
        if op.lower() in OP_NAMES:
            return op.lower()
    elif not isinstance(op, bool) and isinstance(op, int) and 0 <= op < len(OP_NAMES):
        return OP_NAMES[op]
    raise ValueError(f"unknown candidate {op!r}: use a name in {list(OP_NAMES)} or a code 0 (2D), 1 (3D), 2 (P3D).")


def get_candidate(table: str, op: int | str) -> tuple[Kernel, Kernel]:
    """Look up the (X, Y) kernels of candidate ``op`` in the ``"encoder"`` or ``"decoder"`` table."""
    if table not in _TABLES:
        raise ValueError(f"unknown candidate table {table!r}; choose 'encoder' or 'decoder'.")
    return _TABLES[table][op_name(op)]
