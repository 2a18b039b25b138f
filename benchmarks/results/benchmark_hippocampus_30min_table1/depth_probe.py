"""Probe (issue 14, not built): how much of the benchmark's retraining step the deep encoder cells take, i.e. the
most a searched encoder depth (an identity candidate for the cells after the first of each stage) could buy in
steps per budget.

    OMP_NUM_THREADS=1 python benchmarks/results/benchmark_hippocampus_30min_table1/depth_probe.py

The network is the benchmark's (``vnas_random1``'s architecture, ``init_filters`` 16, a 16-channel full-resolution
stage, zero-initialised residual cells, 3 classes), stepped as the benchmark trains it: channels-last throughout,
bf16 autocast, Dice + CE on float32 logits, SGD with momentum, batch 2 of 32x64x32. Cells past the first ``k`` of
each encoder stage are replaced by the identity (stride 1, the same width in and out, so the network stays valid).
The variants alternate in one process; min per variant over ``--rounds`` rounds of 4 timed steps after 2 warm-up
steps.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn as nn
from monai.losses import DiceCELoss

from vnas_monai.benchmark.vnas import VNAS_NETWORK, random_architecture
from vnas_monai.networks.layers.memory import computing_layout
from vnas_monai.spaces.vnas import VNASNet

#: cells kept per encoder stage (the paper's ResNet-50 groups are 3, 4, 6, 3)
VARIANTS = {"3 4 6 3 (the paper's)": (3, 4, 6, 3), "3 2 2 1": (3, 2, 2, 1), "2 1 1 1": (2, 1, 1, 1),
            "1 1 1 1": (1, 1, 1, 1)}


class SkipCell(nn.Module):
    """An encoder cell that returns its input (the cell call passes its architecture row and index too)."""

    def forward(self, x: torch.Tensor, *_: object) -> torch.Tensor:
        return x


def build(keep: tuple[int, ...]) -> nn.Module:
    torch.manual_seed(0)
    net = VNASNet(architecture=random_architecture(1001), in_channels=1, out_channels=3, zero_init_residual=True,
                  **VNAS_NETWORK)
    for layer, k in zip((net.layer1, net.layer2, net.layer3, net.layer4), keep):
        for j in range(k, len(layer)):
            layer[j] = SkipCell()
    return net


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 1, 32, 64, 32, generator=g).contiguous(memory_format=torch.channels_last_3d)
    y = torch.randint(0, 3, (2, 1, 32, 64, 32), generator=g)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    nets = {name: build(keep) for name, keep in VARIANTS.items()}
    best = {name: float("inf") for name in nets}
    for _ in range(args.rounds):
        for name, net in nets.items():
            opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
            with computing_layout(net, True) as model:
                model.train()
                for i in range(6):
                    start = time.perf_counter()
                    with torch.autocast("cpu", torch.bfloat16):
                        out = model(x)
                    opt.zero_grad(set_to_none=True)
                    loss_fn(out.float(), y).backward()
                    opt.step()
                    if i >= 2:
                        best[name] = min(best[name], time.perf_counter() - start)
    full = best[next(iter(VARIANTS))]
    print(f"threads {torch.get_num_threads()}; retraining step, bf16, batch 2 x 32x64x32")
    print("| encoder cells per stage | step (ms) | vs the paper's depth | parameters |")
    print("|---|---|---|---|")
    for name, net in nets.items():
        print(f"| {name} | {1000 * best[name]:.1f} | {best[name] / full - 1:+.1%} | "
              f"{sum(p.numel() for p in net.parameters()):,} |")


if __name__ == "__main__":
    main()
