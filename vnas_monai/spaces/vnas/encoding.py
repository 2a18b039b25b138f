"""V-NAS architecture codes: which candidate (2D, 3D or P3D) each searchable cell uses.

Zhu et al., "V-NAS: Neural Architecture Search for Volumetric Medical Image Segmentation", 3DV 2019, §3.
A code has 16 encoder cells (ResNet-50 groups of 3, 4, 6, 3) and 5 decoder dense blocks; each entry is
0 (2D), 1 (3D) or 2 (P3D). Codes are stored as plain JSON, never pickled, so that every checkpoint we write loads
with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import math
import os
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

__all__ = [
    "Architecture",
    "DECIDED_MARGIN",
    "cell_margins",
    "OP_NAMES",
    "ENCODER_GROUPS",
    "NUM_ENCODER_CELLS",
    "NUM_DECODER_BLOCKS",
    "PRESETS",
]

#: Candidate names, in code order: code ``i`` is ``OP_NAMES[i]``.
OP_NAMES: tuple[str, ...] = ("2d", "3d", "p3d")
#: Encoder cells per ResNet-50 stage (paper Fig. 1).
ENCODER_GROUPS: tuple[int, ...] = (3, 4, 6, 3)
NUM_ENCODER_CELLS: int = sum(ENCODER_GROUPS)
NUM_DECODER_BLOCKS: int = 5

#: The three architectures the paper reports (Tables 2, 3 and 4), in the paper's notation.
PRESETS: dict[str, tuple[str, str]] = {
    "nih": ("0 0 0, 0 0 0 1, 2 0 2 0 2 2, 0 0 0", "0 0 1 0 1"),
    "msd_lung": ("0 0 0, 1 2 0 1, 2 1 2 0 0 0, 0 0 0", "0 0 2 1 1"),
    "msd_pancreas": ("0 2 2, 2 0 0 0, 2 2 1 2 1 1, 0 1 1", "1 0 2 0 1"),
}


def _check_codes(name: str, codes: Sequence[Any], length: int) -> list[int]:
    if isinstance(codes, (str, bytes)) or not isinstance(codes, Sequence):
        raise ValueError(f"{name} must be a sequence of {length} ints in {{0, 1, 2}}, got {codes!r}.")
    if len(codes) != length:
        raise ValueError(f"{name} must have {length} entries (one per cell), got {len(codes)}: {list(codes)}.")
    out = []
    for i, c in enumerate(codes):
        if isinstance(c, bool) or not isinstance(c, int) and not (hasattr(c, "__index__") and not isinstance(c, float)):
            raise ValueError(f"{name}[{i}] must be an int in {{0, 1, 2}} (0=2D, 1=3D, 2=P3D), got {c!r}.")
        c = int(c)
        if c not in range(len(OP_NAMES)):
            raise ValueError(f"{name}[{i}] = {c} is not a candidate code; use 0 (2D), 1 (3D) or 2 (P3D).")
        out.append(c)
    return out


def _check_probabilities(name: str, rows: Any, length: int) -> list[list[float]]:
    if not isinstance(rows, Sequence) or len(rows) != length:
        got = len(rows) if isinstance(rows, Sequence) else type(rows).__name__
        raise ValueError(f"probabilities['{name}'] must have {length} rows of 3 values, got {got}.")
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, Sequence) or len(row) != len(OP_NAMES):
            raise ValueError(f"probabilities['{name}'][{i}] must hold 3 values (2D, 3D, P3D), got {row!r}.")
        vals = [float(v) for v in row]
        if any(not math.isfinite(v) or v < 0 for v in vals):
            raise ValueError(f"probabilities['{name}'][{i}] must be finite and non-negative, got {vals}.")
        out.append(vals)
    return out


def _parse_paper(name: str, text: str) -> list[int]:
    tokens = text.replace(",", " ").replace("[", " ").replace("]", " ").split()
    try:
        return [int(t) for t in tokens]
    except ValueError as e:
        raise ValueError(f"{name} code {text!r} must be integers separated by spaces/commas: {e}") from None


class Architecture(JsonFileEncoding):
    """A discrete V-NAS architecture, optionally with the search's choice probabilities.

    Args:
        encoder: 16 codes, one per encoder bottleneck cell (stages of 3, 4, 6, 3); 0 = 2D, 1 = 3D, 2 = P3D.
        decoder: 5 codes, one per decoder dense block.
        probabilities: optional ``{"encoder": 16 x 3, "decoder": 5 x 3}`` softmax probabilities (2D, 3D, P3D).
        meta: optional JSON-able extras (e.g. ``{"history": [...]}`` of per-epoch probabilities).

    Raises:
        ValueError: a wrong number of codes, a code outside {0, 1, 2}, or malformed probabilities.
    """

    JSON_NOUN = "architecture"

    def __init__(
        self,
        encoder: Sequence[int],
        decoder: Sequence[int],
        probabilities: Mapping[str, Any] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        self.encoder = _check_codes("encoder", encoder, NUM_ENCODER_CELLS)
        self.decoder = _check_codes("decoder", decoder, NUM_DECODER_BLOCKS)
        self.probabilities: dict[str, list[list[float]]] | None = None
        if probabilities is not None:
            if not isinstance(probabilities, Mapping) or set(probabilities) != {"encoder", "decoder"}:
                raise ValueError("probabilities must be a mapping with exactly the keys 'encoder' and 'decoder'.")
            self.probabilities = {
                "encoder": _check_probabilities("encoder", probabilities["encoder"], NUM_ENCODER_CELLS),
                "decoder": _check_probabilities("decoder", probabilities["decoder"], NUM_DECODER_BLOCKS),
            }
        self.meta: dict[str, Any] = dict(meta or {})

    # ----------------------------------------------------------------- constructors
    @classmethod
    def from_codes(cls, codes: Sequence[int], meta: Mapping[str, Any] | None = None) -> Architecture:
        """From the 21 codes, encoder first (:attr:`codes`, e.g. a ``VNASNet``'s ``arch_code`` buffer)."""
        codes = [int(c) for c in codes]
        if len(codes) != NUM_ENCODER_CELLS + NUM_DECODER_BLOCKS:
            raise ValueError(f"an architecture has {NUM_ENCODER_CELLS + NUM_DECODER_BLOCKS} codes, got {len(codes)}.")
        return cls(codes[:NUM_ENCODER_CELLS], codes[NUM_ENCODER_CELLS:], meta=meta)

    @classmethod
    def random(cls, seed: int) -> Architecture:
        """A uniformly random architecture (each of the 21 cells any candidate), from ``seed``."""
        import random

        rng = random.Random(seed)
        return cls.from_codes([rng.randrange(len(OP_NAMES)) for _ in range(NUM_ENCODER_CELLS + NUM_DECODER_BLOCKS)])

    @classmethod
    def from_paper(cls, encoder: str, decoder: str) -> Architecture:
        """Parse the paper's notation, e.g. ``("0 0 0, 0 0 0 1, 2 0 2 0 2 2, 0 0 0", "0 0 1 0 1")``."""
        enc = _parse_paper("encoder", encoder)
        groups = [g for g in encoder.replace("[", "").replace("]", "").split(",") if g.strip()]
        if len(groups) > 1 and tuple(len(g.split()) for g in groups) != ENCODER_GROUPS:
            raise ValueError(
                f"encoder code {encoder!r} must group its cells as {ENCODER_GROUPS} (ResNet-50 stages), "
                f"got groups of {tuple(len(g.split()) for g in groups)}."
            )
        return cls(enc, _parse_paper("decoder", decoder))

    @classmethod
    def preset(cls, name: str) -> Architecture:
        """The paper's searched architecture: ``"nih"``, ``"msd_lung"`` or ``"msd_pancreas"``."""
        key = str(name).lower()
        if key not in PRESETS:
            raise ValueError(f"unknown architecture preset {name!r}; choose one of {sorted(PRESETS)}.")
        arch = cls.from_paper(*PRESETS[key])
        arch.meta["preset"] = key
        return arch

    @classmethod
    def uniform(cls, op: int | str) -> Architecture:
        """Every cell uses the same candidate (the paper's manual baselines of Table 1 use two such halves)."""
        code = OP_NAMES.index(op) if isinstance(op, str) and op in OP_NAMES else op
        return cls([code] * NUM_ENCODER_CELLS, [code] * NUM_DECODER_BLOCKS)

    @classmethod
    def manual(cls, encoder_op: int | str, decoder_op: int | str) -> Architecture:
        """One candidate for every encoder cell and one for every decoder block (the nine rows of Table 1)."""
        return cls(cls.uniform(encoder_op).encoder, cls.uniform(decoder_op).decoder)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "architecture") -> Architecture:
        if not isinstance(data, Mapping) or "encoder" not in data or "decoder" not in data:
            raise ValueError(f"{source}: expected a JSON object with 'encoder' and 'decoder' code lists.")
        meta = {k: v for k, v in data.items() if k not in ("encoder", "decoder", "probabilities")}
        try:
            return cls(data["encoder"], data["decoder"], data.get("probabilities"), meta)
        except ValueError as e:
            raise ValueError(f"{source}: {e}") from None

    @classmethod
    def from_probabilities(cls, probabilities: Mapping[str, Any], meta: Mapping[str, Any] | None = None
                           ) -> Architecture:
        """The architecture of each cell's most probable candidate (the discretisation of ``derive``), keeping
        ``probabilities`` (``{"encoder": 16 x 3, "decoder": 5 x 3}``): fold aggregation
        (:func:`vnas_monai.spaces.aggregate.aggregate`)."""
        codes = {part: [max(range(len(row)), key=list(row).__getitem__) for row in probabilities[part]]
                 for part in ("encoder", "decoder")}
        return cls(codes["encoder"], codes["decoder"], probabilities, dict(meta or {}))

    @classmethod
    def resolve(cls, spec: Architecture | str | os.PathLike | Mapping[str, Any]) -> Architecture:
        """Accept an ``Architecture``, a preset name, a path to an arch.json, or a dict."""
        if isinstance(spec, Architecture):
            return spec
        if isinstance(spec, Mapping):
            return cls.from_dict(spec)
        if isinstance(spec, str) and spec.lower() in PRESETS:
            return cls.preset(spec)
        if isinstance(spec, str) and spec.lower() in OP_NAMES:
            return cls.uniform(spec.lower())
        path = Path(spec)
        if path.suffix == ".json" or path.exists():
            return cls.load(path)
        raise ValueError(
            f"architecture {spec!r} is neither a preset {sorted(PRESETS)}, a uniform code {list(OP_NAMES)}, "
            "nor an existing arch.json file."
        )

    # ----------------------------------------------------------------- outputs
    def to_paper(self) -> tuple[str, str]:
        """The paper's notation: encoder codes grouped by stage, then decoder codes."""
        groups, i = [], 0
        for n in ENCODER_GROUPS:
            groups.append(" ".join(str(c) for c in self.encoder[i : i + n]))
            i += n
        return ", ".join(groups), " ".join(str(c) for c in self.decoder)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"encoder": list(self.encoder), "decoder": list(self.decoder)}
        if self.probabilities is not None:
            data["probabilities"] = {k: [list(r) for r in v] for k, v in self.probabilities.items()}
        enc, dec = self.to_paper()
        data["paper"] = {"encoder": enc, "decoder": dec}
        for k, v in self.meta.items():
            if k != "paper":
                data[k] = v
        return data

    def margins(self) -> dict[str, list[float]] | None:
        """Each cell's best minus second-best probability (``None`` without probabilities): how firmly it chose."""
        if self.probabilities is None:
            return None
        return {part: cell_margins(rows) for part, rows in self.probabilities.items()}

    def decision(self, threshold: float = DECIDED_MARGIN) -> dict[str, Any] | None:
        """How decided the search is: median and minimum cell margin over the 21 cells, and whether the median
        reaches ``threshold`` (``None`` without probabilities). An undecided architecture is an argmax over noise."""
        margins = self.margins()
        return None if margins is None else decision_of(margins, threshold)

    @property
    def codes(self) -> list[int]:
        """All 21 codes, encoder first."""
        return self.encoder + self.decoder

    @property
    def encoder_ops(self) -> list[str]:
        return [OP_NAMES[c] for c in self.encoder]

    @property
    def decoder_ops(self) -> list[str]:
        return [OP_NAMES[c] for c in self.decoder]

    # ----------------------------------------------------------------- search-space protocol (vnas_monai.spaces)
    #: the search space this encoding belongs to
    space = "vnas"

    def digest(self) -> str:
        """Stable hash of the choices (not of probabilities or meta): equal architectures share it across runs and
        machines, so an archive of trained candidates can be keyed by it."""
        return choices_digest(self.space, {"encoder": self.encoder, "decoder": self.decoder})

    def rows(self) -> dict[str, list[str]]:
        """The row layout with op names, for logs and figures: ``{"encoder": 16 names, "decoder": 5 names}``."""
        return {"encoder": self.encoder_ops, "decoder": self.decoder_ops}

    @staticmethod
    def options() -> dict[str, list[str]]:
        """Each row's candidate names (every cell chooses among 2D, 3D, P3D)."""
        return {"encoder": list(OP_NAMES), "decoder": list(OP_NAMES)}

    @staticmethod
    def layout() -> RowLayout:
        """E1..E16 grouped by ResNet-50 stage (3, 4, 6, 3), then D1..D5; candidates 2D, 3D, P3D."""
        encoder, i = [], 0
        for stage, n in enumerate(ENCODER_GROUPS):
            encoder += [f"E{i + j + 1} (stage {stage + 1})" for j in range(n)]
            i += n
        separators = [int(sum(ENCODER_GROUPS[: k + 1])) for k in range(len(ENCODER_GROUPS))]
        return RowLayout({"encoder": encoder, "decoder": [f"D{b + 1}" for b in range(NUM_DECODER_BLOCKS)]},
                         ["2D", "3D", "P3D"], separators, "0=2D, 1=3D, 2=P3D")

    def summary(self) -> str:
        """``encoder [0 0 0, 0 0 0 1, ...], decoder [0 0 1 0 1]`` (the paper's notation)."""
        enc, dec = self.to_paper()
        return f"encoder [{enc}], decoder [{dec}]"

    def plot(self, path: str | os.PathLike, title: str | None = None) -> Path:
        """The architecture figure (:func:`vnas_monai.spaces.vnas.figures.plot_architecture`) as a PNG at ``path``."""
        from .figures import plot_architecture

        return plot_architecture(self, path, title)

    def neighbours(self) -> list[Architecture]:
        """Every architecture that differs in exactly one cell (21 cells x 2 other candidates = 42), encoder first."""
        out = []
        for i, code in enumerate(self.codes):
            for other in range(len(OP_NAMES)):
                if other != code:
                    codes = list(self.codes)
                    codes[i] = other
                    out.append(Architecture(codes[:NUM_ENCODER_CELLS], codes[NUM_ENCODER_CELLS:]))
        return out

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Architecture) and self.codes == other.codes

    def __hash__(self) -> int:
        return hash(tuple(self.codes))

    def __repr__(self) -> str:
        enc, dec = self.to_paper()
        return f"Architecture(encoder=[{enc}], decoder=[{dec}])"
