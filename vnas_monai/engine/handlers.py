"""Ignite/MONAI handlers for the V-NAS search (Zhu et al., 3DV 2019, Alg. 1).

- :class:`ArchitectureLogger`: after every epoch, records the choice probabilities softmax(alpha), softmax(beta),
  derives the discrete architecture (argmax per cell, paper §3.3) and writes ``arch.json``, a PNG of the
  probabilities over epochs and optional TensorBoard scalars. Its history is checkpointable (``state_dict``), so a
  resumed search keeps the whole curve.
- :func:`search_losses`: output transform for MONAI's ``StatsHandler``/``TensorBoardStatsHandler`` reporting the
  weight loss and, when an architecture step ran, the architecture loss.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import ignite.distributed as idist
import torch
from ignite.engine import Engine, Events

from vnas_monai.engine.plots import plot_probability_history
from vnas_monai.engine.search import ARCH_LOSS, unwrap_network

__all__ = ["ArchitectureLogger", "search_losses"]


_COUNTERS = ("epoch", "iteration")


def _rows(probs: Any, part: str, decimals: int, num_rows: int | None = None) -> list[list[float]]:
    rows = probs.detach().float().cpu().tolist() if isinstance(probs, torch.Tensor) else [list(r) for r in probs]
    if not rows or len({len(r) for r in rows}) != 1 or (num_rows is not None and len(rows) != num_rows):
        expected = f"{num_rows} rows" if num_rows is not None else "rows"
        raise ValueError(f"{part} probabilities must be {expected} of equal length, got {len(rows)} rows.")
    return [[round(float(v), decimals) for v in r] for r in rows]


def _entry(epoch: int, iteration: int, probs: Mapping[str, Any], decimals: int) -> dict[str, Any]:
    """One history entry: the counters and each part's probability table (the space's row layout)."""
    return {"epoch": int(epoch), "iteration": int(iteration),
            **{part: _rows(rows, part, decimals) for part, rows in probs.items() if part not in _COUNTERS}}


def _check_history(history: Any, layout: Any) -> list[dict[str, Any]]:
    """Validate a saved history against the space's row layout (part names and cell counts)."""
    if not isinstance(history, Sequence):
        raise ValueError(f"architecture history must be a list of per-epoch entries, got {type(history).__name__}.")
    out = []
    for h in history:
        if not isinstance(h, Mapping) or not {"epoch", *layout.parts} <= set(h):
            raise ValueError(f"architecture history entry {h!r} lacks 'epoch' or one of {list(layout.parts)}.")
        for part, names in layout.parts.items():
            _rows(h[part], part, 12, len(names))
        out.append(_entry(h["epoch"], h.get("iteration", 0), {k: h[k] for k in layout.parts}, 12))
    return out


class ArchitectureLogger:
    """Track and publish the searched architecture during a V-NAS search.

    At every ``EPOCH_COMPLETED`` the current probabilities are appended to :attr:`history`; every
    ``log_every_epochs`` epochs and at ``COMPLETED`` (rank 0 only):

    - ``<output_dir>/<filename>`` is written atomically in the :class:`vnas_monai.spaces.vnas.Architecture` JSON format
      (``encoder``, ``decoder``, ``probabilities``, ``paper``) plus ``history`` (one ``{"epoch", "iteration",
      "encoder", "decoder"}`` entry per epoch), ``epoch``, ``iteration``, ``complete``, ``mix`` and
      ``arch_warmup_epochs``, and how decided the search is: ``margins`` (each cell's best minus second-best
      probability) and ``decision`` (median and minimum margin, ``decided`` when the median reaches
      :data:`vnas_monai.spaces.vnas.DECIDED_MARGIN`). ``Architecture.load`` reads it back.
    - ``<output_dir>/<png>`` plots each cell's probabilities against the epoch (written atomically).
    - the architecture is logged in the paper's notation with its median margin (during the weight warm-up, that
      it is not searched yet); at the end a warning says when it is not decided.

    TensorBoard scalars ``arch/E01/2d`` ... ``arch/D5/p3d`` are written for every epoch when ``tensorboard_dir``
    is set. ``state_dict()``/``load_state_dict()`` carry the history through MONAI ``CheckpointSaver`` /
    ``CheckpointLoader`` (plain lists, loadable with ``torch.load(weights_only=True)``); ``state_dict()`` records
    the current epoch first when called at an epoch boundary, so the checkpoint is complete whatever the order in
    which the handlers were attached.

    Args:
        output_dir: folder for ``filename`` and ``png``.
        filename: architecture JSON file name.
        png: probability plot file name; ``None`` to skip the plot.
        tensorboard_dir: folder for a ``SummaryWriter``; ``None`` to skip TensorBoard.
        log_every_epochs: write files and log every N epochs (the history is still recorded every epoch).
        network: the supernet; defaults to ``engine.network`` (unwrapped from DDP/compile), looked up at event time.
        name: logger name; defaults to ``engine.logger``.
        decimals: rounding of the recorded probabilities (keeps ``arch.json`` small over long searches).
        space: the registered search space (:func:`vnas_monai.spaces.get_space`) whose row layout a history restored
            before any network is known is checked against; once the network is known, its encoding's layout.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        filename: str = "arch.json",
        png: str | None = "arch_probabilities.png",
        tensorboard_dir: str | os.PathLike | None = None,
        log_every_epochs: int = 1,
        network: torch.nn.Module | None = None,
        name: str | None = None,
        decimals: int = 6,
        space: str = "vnas",
    ) -> None:
        if int(log_every_epochs) < 1:
            raise ValueError(f"log_every_epochs must be >= 1, got {log_every_epochs}.")
        self.output_dir = Path(output_dir)
        self.filename = filename
        self.png = png
        self.tensorboard_dir = tensorboard_dir
        self.log_every_epochs = int(log_every_epochs)
        self.network = network
        self.decimals = int(decimals)
        self.space = space
        self.logger = logging.getLogger(name)
        self._name = name
        self.history: list[dict[str, Any]] = []
        self._engine: Engine | None = None
        self._writer: Any = None
        self._published: tuple[int, int, bool] | None = None
        self._layout: Any = None  # the encoding's RowLayout, from the first derived architecture
        self._options: dict[str, list[str]] | None = None

    # ----------------------------------------------------------------- ignite API
    def attach(self, engine: Engine) -> None:
        """Register on ``EPOCH_COMPLETED`` and ``COMPLETED`` of ``engine`` (the search trainer)."""
        if self._name is None:
            self.logger = engine.logger
        self._engine = engine
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.epoch_completed)
        engine.add_event_handler(Events.COMPLETED, self.completed)

    def epoch_completed(self, engine: Engine) -> None:
        self._record(engine)
        if engine.state.epoch % self.log_every_epochs == 0:
            self._publish(engine, complete=self._is_complete(engine))

    def completed(self, engine: Engine) -> None:
        if engine.state.iteration > 0:
            self._record(engine)
        self._publish(engine, complete=self._is_complete(engine))
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def state_dict(self) -> dict[str, Any]:
        """``{"history": [...]}``; records the current epoch first if the engine sits at an epoch boundary."""
        engine = self._engine
        if engine is not None and self._at_epoch_end(engine):
            self._record(engine)
        return {"history": [dict(h) for h in self.history]}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore the history saved by :meth:`state_dict` (e.g. by MONAI ``CheckpointLoader``)."""
        if not isinstance(state_dict, Mapping) or "history" not in state_dict:
            raise ValueError("ArchitectureLogger state must be a mapping with a 'history' list.")
        self.history = _check_history(state_dict["history"], self._space_layout())

    # ----------------------------------------------------------------- internals
    def _space_layout(self) -> Any:
        """The row layout of the searched space: the network's encoding's, else the registered ``space``'s."""
        net = self.network if self.network is not None else getattr(self._engine, "network", None)
        if net is not None:
            return unwrap_network(net).derive().layout()
        from vnas_monai.spaces import get_space

        return get_space(self.space).encoding_class().layout()

    def _network(self, engine: Engine) -> torch.nn.Module:
        net = self.network if self.network is not None else getattr(engine, "network", None)
        if net is None:
            raise ValueError("ArchitectureLogger needs a network: pass network=... or attach it to a MONAI trainer.")
        return unwrap_network(net)

    @staticmethod
    def _at_epoch_end(engine: Engine) -> bool:
        length = engine.state.epoch_length
        return bool(length) and engine.state.iteration > 0 and engine.state.iteration % length == 0

    @staticmethod
    def _is_complete(engine: Engine) -> bool:
        max_epochs = engine.state.max_epochs
        return max_epochs is not None and engine.state.epoch >= max_epochs and ArchitectureLogger._at_epoch_end(engine)

    @staticmethod
    def _rank(engine: Engine) -> int:
        rank = getattr(engine.state, "rank", None)
        return int(idist.get_rank() if rank is None else rank)

    def _record(self, engine: Engine) -> None:
        if self._options is None:
            self._options = self._network(engine).derive().options()
        epoch, iteration = int(engine.state.epoch), int(engine.state.iteration)
        if self.history and (self.history[-1]["epoch"], self.history[-1]["iteration"]) == (epoch, iteration):
            return  # already recorded at this point (state_dict() ran first in the same event)
        entry = _entry(epoch, iteration, self._network(engine).arch_probabilities(), self.decimals)
        # an entry for this epoch or later can only come from an interrupted run being resumed: replace it
        self.history = [h for h in self.history if h["epoch"] < epoch] + [entry]
        if self.tensorboard_dir is not None and self._rank(engine) == 0:
            self._write_tensorboard(entry)

    def _write_tensorboard(self, entry: Mapping[str, Any]) -> None:
        try:
            if self._writer is None:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(log_dir=str(self.tensorboard_dir))
            options = self._options or {}
            for part, rows in entry.items():
                if part in _COUNTERS:
                    continue
                prefix, width = part[:1].upper(), len(str(len(rows)))
                names = options.get(part) or [str(k) for k in range(len(rows[0]))]
                for i, row in enumerate(rows):
                    for op, p in zip(names, row):
                        self._writer.add_scalar(f"arch/{prefix}{i + 1:0{width}d}/{op}", p, entry["epoch"])
            self._writer.flush()
        except Exception as e:  # a broken TensorBoard install must not stop a day-long search
            self.logger.warning(f"ArchitectureLogger: could not write TensorBoard scalars: {e}")

    def _publish(self, engine: Engine, complete: bool) -> None:
        point = (int(engine.state.epoch), int(engine.state.iteration), bool(complete))
        if self._rank(engine) != 0 or point == self._published:
            return  # other ranks hold the same alpha/beta; the last epoch is otherwise written twice (+ COMPLETED)
        self._published = point
        net = self._network(engine)
        arch = net.derive()
        self._layout = arch.layout()
        arch.meta.update(
            {
                "history": [dict(h) for h in self.history],
                "epoch": int(engine.state.epoch),
                "iteration": int(engine.state.iteration),
                "complete": bool(complete),
                "mix": bool(getattr(net, "mix", False)),
            }
        )
        warmup = int(getattr(engine, "arch_warmup_epochs", 0))
        if hasattr(engine, "arch_warmup_epochs"):
            arch.meta["arch_warmup_epochs"] = warmup
        margins, decision = arch.margins(), arch.decision()
        arch.meta["margins"] = {k: [round(m, self.decimals) for m in v] for k, v in margins.items()}
        arch.meta["decision"] = {k: round(v, self.decimals) if isinstance(v, float) else v for k, v in decision.items()}
        path = arch.save(self.output_dir / self.filename)
        epoch = int(engine.state.epoch)
        if not arch.meta["mix"] and epoch <= warmup:
            # the argmax of uniform probabilities is all-2D: not a choice, so do not print it as one
            self.logger.info(f"V-NAS architecture at epoch {epoch}: not searched yet (weight warm-up, epoch "
                             f"{epoch} of {warmup}; alpha/beta are uniform) -> {path}")
            self._plot()
            return
        self.logger.info(
            f"V-NAS architecture at epoch {epoch} ({self._layout.code_legend}): {arch.summary()}, "
            f"median cell margin {decision['median_margin']:.3f} (min {decision['min_margin']:.3f})"
            f"{' (final)' if complete else ''} -> {path}"
        )
        if complete and not arch.meta["mix"] and not decision["decided"]:
            self.logger.warning(
                f"the searched architecture is not decided: its median cell margin (best minus second-best "
                f"probability) is {decision['median_margin']:.3f} < {decision['threshold']:.2f}, so several cells "
                f"are an argmax over noise. Search longer, or raise arch_learning_rate (the architecture moved by "
                f"{self._arch_steps(engine)} Adam steps)."
            )
        self._plot()

    @staticmethod
    def _arch_steps(engine: Engine) -> int:
        return int(getattr(engine.state, "arch_iteration", 0))

    def _plot(self) -> None:
        if self.png and self.history:
            try:
                plot_probability_history(self.history, self.output_dir / self.png, layout=self._layout)
            except Exception as e:  # the JSON is the product; a plotting failure only costs the picture
                self.logger.warning(f"ArchitectureLogger: could not plot {self.png}: {e}")


def search_losses(output: Any) -> dict[str, float]:
    """Output transform for MONAI stats handlers: ``{"loss": ..., "arch_loss": ...}`` (arch loss only if computed).

    Works on the decollated output (a list of per-sample dicts, MONAI's default) and on a plain dict.
    """
    first = output[0] if isinstance(output, (list, tuple)) and output else output
    if not isinstance(first, Mapping):
        return {}
    out = {}
    for key in ("loss", ARCH_LOSS):
        value = first.get(key)
        if value is not None:
            out[key] = float(value.item() if isinstance(value, torch.Tensor) else value)
    return out
