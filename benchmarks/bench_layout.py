"""Training-step time of V-NAS networks by memory layout, under bf16 autocast on the CPU (issue 14's budgeted runs).

Three layouts, measured interleaved in one process:

- ``mixed``: channels-last parameters and inputs, convolutions computing NCDHW (``"auto"`` in bf16 training of
  narrow networks): what the budgeted trainer did before ``computing_layout``; the gradients arrive channels-last at
  NCDHW activations;
- ``ncdhw``: NCDHW parameters, inputs and convolutions (the bundles' bf16 search and training below
  ``init_filters`` 32; :func:`vnas_monai.networks.layers.set_bf16_training_layout` keeps it NCDHW at any width);
- ``channels_last``: :func:`vnas_monai.networks.layers.computing_layout` (parameters and every convolution).

    OMP_NUM_THREADS=1 python benchmarks/bench_layout.py --roi 32 64 32 --batch 8 \\
        --output benchmarks/results/layout_hippocampus_cpu.json
"""

from __future__ import annotations

import argparse
import json
import time
from contextlib import ExitStack
from pathlib import Path

import torch
from monai.losses import DiceCELoss

from vnas_monai.networks.layers import computing_layout, set_bf16_training_layout
from vnas_monai.spaces.vnas import VNASNet, VNASSupernet

LAYOUTS = ("mixed", "ncdhw", "channels_last")


def build(kind: str, init_filters: int, full_resolution_channels: int) -> torch.nn.Module:
    torch.manual_seed(0)
    kw = dict(in_channels=1, out_channels=3, init_filters=init_filters,
              full_resolution_channels=full_resolution_channels)
    return VNASSupernet(**kw) if kind == "supernet" else VNASNet(architecture="nih", **kw)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--roi", type=int, nargs=3, default=[32, 64, 32])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--init_filters", type=int, default=16)
    ap.add_argument("--full_resolution_channels", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--output")
    args = ap.parse_args(argv)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    x = torch.randn(args.batch, 1, *args.roi)
    y = torch.randint(0, 3, (args.batch, 1, *args.roi))
    results = {}
    for kind in ("network", "supernet"):
        runs = {}
        with ExitStack() as stack:
            for layout in LAYOUTS:
                net = build(kind, args.init_filters, args.full_resolution_channels)
                set_bf16_training_layout(net, False)  # "auto" convolutions compute NCDHW in bf16 training
                if layout == "mixed":
                    net.to(memory_format=torch.channels_last_3d)
                elif layout == "channels_last":
                    stack.enter_context(computing_layout(net, channels_last=True))
                fmt = torch.contiguous_format if layout == "ncdhw" else torch.channels_last_3d
                runs[layout] = (net, x.contiguous(memory_format=fmt), torch.optim.SGD(net.parameters(), lr=1e-3))

            def step(layout: str) -> None:
                net, inp, opt = runs[layout]
                opt.zero_grad(set_to_none=True)
                with torch.autocast("cpu", torch.bfloat16):
                    out = net(inp)
                loss_fn(out.float(), y).backward()
                opt.step()

            times = {layout: [] for layout in LAYOUTS}
            for layout in LAYOUTS:
                step(layout)  # warm-up: oneDNN primitive creation
            for _ in range(args.repeats):
                for layout in LAYOUTS:
                    t = time.perf_counter()
                    step(layout)
                    step(layout)
                    times[layout].append((time.perf_counter() - t) / 2)
        results[kind] = {layout: round(min(t), 4) for layout, t in times.items()}
        best = results[kind]
        print(f"{kind}: " + ", ".join(f"{k} {v:.3f} s/step" for k, v in best.items())
              + f"; mixed / channels_last = {best['mixed'] / best['channels_last']:.2f}x")
    record = {"roi": args.roi, "batch": args.batch, "init_filters": args.init_filters,
              "full_resolution_channels": args.full_resolution_channels, "threads": torch.get_num_threads(),
              "torch": torch.__version__, "precision": "bf16 autocast", "step_s": results}
    if args.output:
        Path(args.output).write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record))
    return record


if __name__ == "__main__":
    main()
