"""The NAS-3D-U-Net stop rule (Wang, BraTS 2019, Table 2; N_E = 40, N_C = 100 in §3.4) as an ignite handler.

Table 2 derives the cell structure ``C_i`` once per epoch, adds one to its count in a hash map ``{C}`` and breaks
as soon as a count reaches ``N_C``; after ``N_E`` epochs without that, the answer is the most common structure of
``{C}``. (Line 10 of the table reads "if Ĉ ≠ 0", evidently meaning "if no structure reached N_C", as the text of
§3.4 and the conclusion describe. §3.4 also reports a stop "after the 56th epoch when Ĉ appeared for its 40th
time" under N_E = 40, N_C = 100, which fits neither bound: the rule here follows Table 2.)

:class:`GenotypeStopRule` derives at every ``EPOCH_COMPLETED`` (after the epoch's weight and architecture updates,
i.e. Table 2's "get C_i" at the start of the next epoch), keys the map by the encoding's ``digest()`` and stops the
engine (``engine.terminate()``) at the ``N_C``-th sighting of one genotype or at the end of epoch ``N_E``.
Most frequent ties go to the genotype seen last (the one with the most searched alphas). The counts, the genotypes
(``to_dict()``) and the per-epoch history are the handler's ``state_dict()``, so a resumed search keeps them and
stops at the same epoch as an uninterrupted one. A search relaunched after it stopped terminates at the next
epoch start, before training.

Output (rank 0, atomically, after every epoch and at ``COMPLETED``), when ``output_dir`` is set:
``<output_dir>/<filename>`` (default ``genotype_counts.json``)::

    {"n_c": 100, "n_e": 40, "epoch": 12, "stopped": false, "reason": null,
     "counts": {digest: count}, "history": [[epoch, digest], ...],
     "chosen": digest, "chosen_count": 7, "genotype": {...the chosen genotype's to_dict()...}}

and, once the rule has stopped the search, the chosen genotype alone in ``<output_dir>/<genotype_filename>``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import ignite.distributed as idist
from ignite.engine import Engine, Events

from vnas_monai.io import atomic_write_text

__all__ = ["GenotypeStopRule"]


def _positive(name: str, value: Any, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"GenotypeStopRule: {name} must be an int >= 1{' or None' if allow_none else ''}, got "
                         f"{value!r}.")
    return int(value)


class GenotypeStopRule:
    """Stop a search when one derived genotype has been seen ``n_c`` times, or after ``n_e`` epochs (Table 2).

    Args:
        n_c: N_C, the sightings (one per epoch) that decide a genotype.
        n_e: N_E, the most epochs the search runs; ``None``: only the trainer's ``max_epochs``.
        derive_fn: a zero-argument callable returning the current derived encoding (with ``digest()`` and
            ``to_dict()``), e.g. ``supernet.derive`` (``"$@network.derive"`` in a bundle); ``None``: the
            ``derive()`` of the engine's network (unwrapped from DDP / compile), looked up at event time.
        output_dir: folder of ``filename`` and ``genotype_filename``; ``None``: write nothing.
        filename: the counts' JSON file.
        genotype_filename: the chosen genotype's JSON file, written once the rule stopped; ``None`` to skip.
        name: logger name; defaults to ``engine.logger``.
    """

    def __init__(self, n_c: int, n_e: int | None = None, derive_fn: Callable[[], Any] | None = None,
                 output_dir: str | os.PathLike | None = None, filename: str = "genotype_counts.json",
                 genotype_filename: str | None = "genotype.json", name: str | None = None) -> None:
        self.n_c = _positive("n_c", n_c)
        self.n_e = _positive("n_e", n_e, allow_none=True)
        self.derive_fn = derive_fn
        self.output_dir = None if output_dir is None else Path(output_dir)
        self.filename = filename
        self.genotype_filename = genotype_filename
        self._name = name
        self.logger = logging.getLogger(name)
        self._engine: Engine | None = None
        self.counts: dict[str, int] = {}
        self.genotypes: dict[str, dict[str, Any]] = {}
        self.history: list[list[Any]] = []  # [epoch, digest] per epoch
        self.reason: str | None = None  # "n_c" or "n_e" once the rule has stopped
        self.chosen: str | None = None

    # ----------------------------------------------------------------- ignite API
    def attach(self, engine: Engine) -> None:
        """Register on ``EPOCH_STARTED``, ``EPOCH_COMPLETED`` and ``COMPLETED`` of ``engine``."""
        if self._name is None:
            self.logger = engine.logger
        self._engine = engine
        engine.add_event_handler(Events.EPOCH_STARTED, self.epoch_started)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.epoch_completed)
        engine.add_event_handler(Events.COMPLETED, self.completed)

    def epoch_started(self, engine: Engine) -> None:
        if self.reason is not None:  # restored from a search that had already stopped
            self.logger.info(f"GenotypeStopRule: the search already stopped ({self._why()}); not training further.")
            engine.terminate()

    def epoch_completed(self, engine: Engine) -> None:
        self._record(engine)
        self._publish(engine)
        if self.reason is not None:
            self.logger.info(f"GenotypeStopRule: stopping the search at epoch {engine.state.epoch}: {self._why()}.")
            engine.terminate()

    def completed(self, engine: Engine) -> None:
        self._publish(engine)

    @property
    def stopped(self) -> bool:
        return self.reason is not None

    def most_frequent(self) -> str | None:
        """The digest counted most often (ties: the one seen last), ``None`` before the first epoch."""
        if not self.history:
            return None
        last_seen = {d: i for i, (_, d) in enumerate(self.history)}
        return max(self.counts, key=lambda d: (self.counts[d], last_seen.get(d, -1)))

    def result(self) -> dict[str, Any] | None:
        """The chosen genotype's ``to_dict()`` (the decided one once stopped, else the most frequent so far)."""
        digest = self.chosen or self.most_frequent()
        return None if digest is None else dict(self.genotypes[digest])

    def state_dict(self) -> dict[str, Any]:
        """Counts, genotypes, history and decision (plain containers, ``torch.load(weights_only=True)``-safe);
        records the current epoch first when called at an epoch boundary, whatever the handlers' order."""
        if self._engine is not None and self._at_epoch_end(self._engine):
            self._record(self._engine)
        return {"counts": dict(self.counts), "genotypes": {k: dict(v) for k, v in self.genotypes.items()},
                "history": [list(h) for h in self.history], "reason": self.reason, "chosen": self.chosen}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved (e.g. by MONAI ``CheckpointLoader``).

        Raises:
            ValueError: a malformed state, naming the key.
        """
        if not isinstance(state_dict, Mapping) or not {"counts", "genotypes", "history"} <= set(state_dict):
            raise ValueError("GenotypeStopRule state must be a mapping with 'counts', 'genotypes' and 'history'.")
        history = [[int(e), str(d)] for e, d in state_dict["history"]]
        counts: dict[str, int] = {}
        for _, d in history:
            counts[d] = counts.get(d, 0) + 1
        if counts != {str(k): int(v) for k, v in state_dict["counts"].items()}:
            raise ValueError("GenotypeStopRule state: 'counts' do not match the sightings of 'history'.")
        missing = [d for d in counts if d not in state_dict["genotypes"]]
        if missing:
            raise ValueError(f"GenotypeStopRule state: 'genotypes' lacks the digest(s) {missing[:3]}.")
        reason, chosen = state_dict.get("reason"), state_dict.get("chosen")
        if reason not in (None, "n_c", "n_e") or (chosen is not None and chosen not in counts):
            raise ValueError(f"GenotypeStopRule state: 'reason' {reason!r} / 'chosen' {chosen!r} are not valid.")
        self.history, self.counts = history, counts
        self.genotypes = {str(d): dict(state_dict["genotypes"][d]) for d in counts}
        self.reason, self.chosen = reason, chosen

    # ----------------------------------------------------------------- internals
    @staticmethod
    def _at_epoch_end(engine: Engine) -> bool:
        length = engine.state.epoch_length
        return bool(length) and engine.state.iteration > 0 and engine.state.iteration % length == 0

    def _derive(self, engine: Engine) -> Any:
        if self.derive_fn is not None:
            return self.derive_fn()
        net = getattr(engine, "network", None)
        if net is None:
            raise ValueError("GenotypeStopRule needs derive_fn=... or an engine with a .network that derives.")
        from vnas_monai.engine.architect import unwrap_network

        return unwrap_network(net).derive()

    def _record(self, engine: Engine) -> None:
        epoch = int(engine.state.epoch)
        if self.reason is not None or (self.history and self.history[-1][0] >= epoch):
            return  # decided, or this epoch is already counted (state_dict() ran first in the same event)
        encoding = self._derive(engine)
        digest = str(encoding.digest())
        self.counts[digest] = self.counts.get(digest, 0) + 1
        self.genotypes[digest] = encoding.to_dict()
        self.history.append([epoch, digest])
        self.logger.info(f"GenotypeStopRule: epoch {epoch} derived {digest[:12]}, seen {self.counts[digest]} of "
                         f"N_C = {self.n_c} times ({len(self.counts)} distinct).")
        if self.counts[digest] >= self.n_c:
            self.reason, self.chosen = "n_c", digest
        elif self.n_e is not None and epoch >= self.n_e:
            self.reason, self.chosen = "n_e", self.most_frequent()

    def _why(self) -> str:
        count = self.counts.get(self.chosen or "", 0)
        if self.reason == "n_c":
            return f"genotype {self.chosen[:12]} derived N_C = {self.n_c} times"
        return f"N_E = {self.n_e} epochs; most frequent genotype {str(self.chosen)[:12]} ({count} times)"

    def _publish(self, engine: Engine) -> None:
        if self.output_dir is None or not self.history:
            return
        rank = getattr(engine.state, "rank", None)
        if int(idist.get_rank() if rank is None else rank) != 0:
            return
        digest = self.chosen or self.most_frequent()
        data = {"n_c": self.n_c, "n_e": self.n_e, "epoch": int(engine.state.epoch), "stopped": self.stopped,
                "reason": self.reason, "counts": dict(self.counts), "history": [list(h) for h in self.history],
                "chosen": digest, "chosen_count": self.counts[digest], "genotype": self.genotypes[digest]}
        atomic_write_text(self.output_dir / self.filename, json.dumps(data, indent=1) + "\n")
        if self.stopped and self.genotype_filename:
            atomic_write_text(self.output_dir / self.genotype_filename,
                              json.dumps(self.genotypes[digest], indent=1) + "\n")
