"""Probe (issue 12, not built): would computing a mixed cell's three candidates as one wider branch make the mixed
search iteration faster? The bound: a 3-times-wider single branch must cost less than the three branches.

    OMP_NUM_THREADS=2 python benchmarks/results/bf16_layer_precision_2026-12-07/candidate_fusion_probe.py

The cell is the issue's largest one at ``init_filters`` 16 and a 64^3 patch: the last decoder cell (``decoder4``, 16
input channels at 32^3, 3 dense layers of growth 5, bottleneck factor 4), about a quarter of the forward time of the
mixed iteration. Timed, forward + backward under bf16 autocast, min of 6 after 2 warm-up calls:

- the mixed cell (the three candidates and their softmax-weighted sum, as the supernet runs it);
- each candidate's dense branch alone;
- one 3D branch with three times the growth (15): the widest single branch a fused, grouped form of the three
  candidates could be (2D and P3D kernels zero-padded to 3x3x3 give it more work, not less).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from vnas_monai.spaces.vnas.decoder import DecoderCell, DenseBranch


def timed(fn: Callable[[], torch.Tensor], calls: int = 8, warmup: int = 2) -> float:
    """Min seconds of a bf16-autocast forward + backward of ``fn``."""
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        with torch.autocast("cpu", torch.bfloat16):
            out = fn()
        out.float().sum().backward()
        times.append(time.perf_counter() - start)
    return min(times[warmup:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--in-channels", type=int, default=16)
    parser.add_argument("--size", type=int, default=32, help="the cell's grid (a cube), 32 at a 64^3 patch")
    args = parser.parse_args()
    torch.manual_seed(0)
    c, growth = args.in_channels, 5
    mixed = DecoderCell(c, [0, 1, 2], "relu", "batch", num_layers=3, growth=growth, bn_size=4).train()
    branches = {op: DenseBranch(op, c, 3, growth, 4, "relu", "batch").train() for op in ("2d", "3d", "p3d")}
    wide = DenseBranch("3d", c, 3, 3 * growth, 4, "relu", "batch").train()
    x = torch.randn(2, c, args.size, args.size, args.size, requires_grad=True)
    alpha = torch.randn(3, requires_grad=True)
    rows = {"mixed cell (3 candidates, weighted sum)": timed(lambda: mixed(x, torch.softmax(alpha, 0)))}
    for op, branch in branches.items():
        rows[f"{op} branch alone"] = timed(lambda b=branch: b(x))
    rows[f"one 3d branch, growth {3 * growth}"] = timed(lambda: wide(x))
    print(f"threads {torch.get_num_threads()}, input (2, {c}, {args.size}, {args.size}, {args.size}), bf16")
    for name, t in rows.items():
        print(f"| {name} | {1000 * t:.1f} ms |")
    print(f"sum of the three branches: {1000 * sum(rows[f'{op} branch alone'] for op in branches):.1f} ms")


if __name__ == "__main__":
    main()
