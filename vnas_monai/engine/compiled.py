"""Inference networks compiled by Inductor with frozen weights (issue 12; off by default).

``torch.compile`` with Inductor's ``freezing`` treats the weights as constants: batch norms fold into the
convolutions before them, ReLUs and other pointwise ops fuse, and oneDNN's weights are packed once. Measured on the
2-core AMX CPU, 2 threads, sliding-window inference of a 128x128x64 volume with 64^3 windows
(``benchmarks/bench_compile_inference.py``, ``benchmarks/results/bf16_compile_2026-12-07/``): VNASNet at
``init_filters`` 16 in bf16 takes 0.15 s compiled against 0.26 s eager, with a 16-channel full-resolution stage
0.23 s against 0.37 s. The first call compiles, in 30-60 s.

The compiled graph holds the weights as they were when it was compiled, so a network whose parameters or buffers
changed since (an optimizer step, ``load_state_dict``) is compiled again. Where compilation fails (e.g. no C++
compiler), the network runs eagerly and a warning says why. Under gradients the network always runs eagerly:
freezing is for inference.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

__all__ = ["InferenceCompiler"]

logger = logging.getLogger(__name__)


def _weights_state(network: nn.Module) -> tuple[tuple[int, int], ...]:
    # every in-place change of a tensor (optimizer step, load_state_dict's copy_) bumps its version counter
    tensors = [*network.parameters(), *network.buffers()]
    return tuple((id(t), t._version) for t in tensors)


class InferenceCompiler:
    """Compile networks for inference, once per network and state of its weights.

    Call with a network to get the callable to run it: the compiled network under ``torch.no_grad``, the network
    itself under gradients, or where compilation failed. The callable takes plain tensors and MONAI ``MetaTensor``
    windows alike (metadata is dropped before the compiled graph, as MONAI's evaluator does for ``compile``), and
    batches of any size: they are padded or split to the first call's size, so that one graph serves every window
    batch of a sliding window. The network must return one tensor, batch first.

    Args:
        compile_kwargs: passed to ``torch.compile`` (default: Inductor, static shapes).

    Shapes: as the network's.
    """

    def __init__(self, **compile_kwargs: Any) -> None:
        self.compile_kwargs = {"dynamic": False, **compile_kwargs}
        # the last network compiled, the state of its weights then, and its runner (an inferer serves one network)
        self._last: tuple[nn.Module, Any, Callable] | None = None
        self.failed: str | None = None
        self.compilations = 0

    def __call__(self, network: Callable) -> Callable:
        if self.failed or not isinstance(network, nn.Module) or torch.is_grad_enabled():
            return network
        state = _weights_state(network)
        if self._last is None or self._last[0] is not network or self._last[1] != state:
            if self._last is not None:
                logger.info("the network or its weights changed since it was compiled: compiling it again.")
                torch._dynamo.reset()  # the frozen graph's guards do not see weight values
            self._last = (network, state, self._compile(network))
            self.compilations += 1
        return self._last[2]

    def _compile(self, network: nn.Module) -> Callable:
        compiled = torch.compile(network, **self.compile_kwargs)
        batch: list[int] = []  # the first call's batch size: every later batch is padded or split to it

        def run(x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            from monai.data import MetaTensor
            from torch._inductor import config

            if self.failed:
                return network(x, *args, **kwargs)
            if isinstance(x, MetaTensor):
                x = x.as_tensor()
            try:
                with config.patch(freezing=True):
                    return _in_batches(compiled, batch, x, *args, **kwargs)
            except Exception as e:  # noqa: BLE001 - any backend failure: run eagerly, say why
                self.failed = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                logger.warning(f"compiling the network for inference failed, it runs eagerly. Cause: {self.failed}")
                return network(x, *args, **kwargs)

        return run


def _in_batches(compiled: Callable, batch: list[int], x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    # one graph for every call: a sliding window's last batch of windows is smaller, and each batch size would
    # compile anew (about a minute each). Inputs are padded (or split) to the first call's batch size; an eval-mode
    # network treats the samples of a batch independently.
    if not batch:
        batch.append(x.shape[0])
    size = batch[0]
    outs = []
    for start in range(0, x.shape[0], size):
        chunk = x[start:start + size]
        n = chunk.shape[0]
        if n < size:
            chunk = torch.cat([chunk, chunk.new_zeros((size - n, *chunk.shape[1:]))])
        outs.append(compiled(chunk, *args, **kwargs)[:n])
    return outs[0] if len(outs) == 1 else torch.cat(outs)
