"""Where bf16 pays in the retraining step, layer by layer (issue 12).

The retraining step of the bundles' VNASNet (``init_filters`` 16, 64^3 patch, batch 2) gains less from bf16 than a
32-channel conv-BN-ReLU block does (1.5x against 4.5x). This benchmark finds out which convolutions are to blame: it
records every ``Conv3d`` / ``ConvTranspose3d`` call of one forward pass (input shape, channels, kernel, stride), then
times each distinct call alone, forward + backward (input and weight gradients), in fp32 and under bf16 autocast,
NCDHW and channels-last. It prints the per-layer table, the sums over the step (each layer at its calls' count) and
what an oracle that picks the faster precision and layout per layer would save::

    OMP_NUM_THREADS=2 python benchmarks/bench_layer_precision.py --threads 2 --output layer_precision.json

Times are medians of ``--repeats`` runs after two warm-up runs; the oracle ignores the casts between layers, so it
bounds what a per-layer precision rule could gain from above.

``--layers norm`` does the same for the batch norms (training mode, float32 weights and statistics, the input in
the mode's dtype and layout as autocast hands it over), with forward and backward timed apart::

    OMP_NUM_THREADS=2 python benchmarks/bench_layer_precision.py --layers norm --init-filters 64 --patch 96 96 64
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

MODES = ("fp32_ncdhw", "fp32_cl", "bf16_ncdhw", "bf16_cl")


def record_convs(net: Any, x: torch.Tensor, modules: Any = None) -> Counter:
    """Count the distinct convolution calls of one forward pass of ``net`` (``modules``: the convolutions to watch,
    default every ``Conv3d`` / ``ConvTranspose3d`` of ``net``): (kind, in, out, kernel, stride, padding, groups,
    dilation, input shape) -> number of calls."""
    calls: Counter = Counter()
    if modules is None:
        modules = [m for m in net.modules() if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d))]

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], _out: Any) -> None:
        kind = "convT" if isinstance(module, nn.ConvTranspose3d) else "conv"
        calls[(kind, module.in_channels, module.out_channels, tuple(module.kernel_size), tuple(module.stride),
               tuple(module.padding), module.groups, tuple(module.dilation), tuple(inputs[0].shape))] += 1

    handles = [m.register_forward_hook(hook) for m in modules]
    with torch.no_grad():
        net(x)
    for h in handles:
        h.remove()
    return calls


def time_call(sig: tuple, mode: str, repeats: int) -> float:
    """Median seconds of forward + backward of one convolution call in ``mode``."""
    kind, cin, cout, k, s, p, g, d, shape = sig
    cls = nn.ConvTranspose3d if kind == "convT" else nn.Conv3d
    conv = cls(cin, cout, k, stride=s, padding=p, groups=g, dilation=d, bias=False)
    x = torch.randn(shape)
    if mode.endswith("_cl"):
        conv = conv.to(memory_format=torch.channels_last_3d)
        x = x.contiguous(memory_format=torch.channels_last_3d)
    x.requires_grad_(True)
    bf16 = mode.startswith("bf16")
    times = []
    for i in range(repeats + 2):
        t = time.perf_counter()
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            y = conv(x)
        y.float().sum().backward()
        if i >= 2:
            times.append(time.perf_counter() - t)
        conv.zero_grad(set_to_none=True)
        x.grad = None
    return statistics.median(times)


def record_norms(net: Any, x: torch.Tensor) -> Counter:
    """Count the distinct ``BatchNorm3d`` calls of one forward pass of ``net``: input shape -> number of calls."""
    calls: Counter = Counter()
    modules = [m for m in net.modules() if isinstance(m, nn.BatchNorm3d)]
    handles = [m.register_forward_hook(lambda _m, inputs, _out: calls.update([tuple(inputs[0].shape)]))
               for m in modules]
    with torch.no_grad():
        net(x)
    for h in handles:
        h.remove()
    return calls


def time_norm(shape: tuple, mode: str, repeats: int) -> tuple[float, float]:
    """Median seconds of the forward and of the backward of one training-mode batch norm call in ``mode``."""
    norm = nn.BatchNorm3d(shape[1]).train()
    fmt = torch.channels_last_3d if mode.endswith("_cl") else torch.contiguous_format
    dtype = torch.bfloat16 if mode.startswith("bf16") else torch.float32
    x = torch.randn(shape).to(dtype).contiguous(memory_format=fmt).requires_grad_(True)
    grad = torch.randn(shape).to(dtype).contiguous(memory_format=fmt)
    fwd, bwd = [], []
    for i in range(repeats + 2):
        t = time.perf_counter()
        y = norm(x)
        t1 = time.perf_counter()
        y.backward(grad)
        if i >= 2:
            fwd.append(t1 - t)
            bwd.append(time.perf_counter() - t1)
        x.grad = None
    return statistics.median(fwd), statistics.median(bwd)


def norm_table(calls: Counter, repeats: int) -> dict[str, Any]:
    """Time every distinct batch norm call in every mode; print the table and the sums (each at its calls' count)."""
    layers = []
    for shape, count in calls.items():
        t = {m: time_norm(shape, m, repeats) for m in MODES}
        layers.append({"input": list(shape), "calls": count, "fwd_ms": {m: 1e3 * v[0] for m, v in t.items()},
                       "bwd_ms": {m: 1e3 * v[1] for m, v in t.items()}})
    layers.sort(key=lambda r: -r["calls"] * (r["fwd_ms"]["fp32_cl"] + r["bwd_ms"]["fp32_cl"]))
    print(f"{'input':>24s} {'n':>3s}  " + " ".join(f"{m + ' f/b':>15s}" for m in MODES))
    for r in layers:
        print(f"{str(tuple(r['input'])):>24s} {r['calls']:3d}  "
              + " ".join(f"{r['fwd_ms'][m]:7.2f}/{r['bwd_ms'][m]:<7.2f}" for m in MODES))
    sums = {part: {m: sum(r["calls"] * r[part][m] for r in layers) for m in MODES} for part in ("fwd_ms", "bwd_ms")}
    print("sum over the forward pass's batch norms (ms), forward / backward:")
    for m in MODES:
        print(f"  {m:12s} {sums['fwd_ms'][m]:8.1f} / {sums['bwd_ms'][m]:8.1f}")
    for layout in ("ncdhw", "cl"):
        fwd, bwd = (sums[p][f"fp32_{layout}"] / sums[p][f"bf16_{layout}"] for p in ("fwd_ms", "bwd_ms"))
        print(f"bf16 vs fp32, {layout}: forward {fwd:.2f}x, backward {bwd:.2f}x")
    return {"norm_layers": layers, "norm_sums_ms": sums}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--init-filters", type=int, default=16)
    ap.add_argument("--patch", type=int, nargs=3, default=[64, 64, 64])
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--full-resolution-channels", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--layers", choices=("conv", "norm"), default="conv",
                    help="time the convolutions (default) or the batch norms")
    ap.add_argument("--output", help="write the figures as JSON")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    from vnas_monai.engine import keep_freed_memory
    from vnas_monai.spaces.vnas import VNASNet

    print(keep_freed_memory())  # as the training engines

    net = VNASNet(3, 1, 2, "nih", args.init_filters, full_resolution_channels=args.full_resolution_channels).eval()
    if args.layers == "norm":
        result = {"settings": vars(args), "torch": torch.__version__,
                  **norm_table(record_norms(net, torch.randn(args.batch, 1, *args.patch)), args.repeats)}
        if args.output:
            Path(args.output).write_text(json.dumps(result, indent=1) + "\n")
        return result
    calls = record_convs(net, torch.randn(args.batch, 1, *args.patch))
    layers = []
    for sig, count in calls.items():
        t = {m: time_call(sig, m, args.repeats) for m in MODES}
        kind, cin, cout, k, s, _, g, _, shape = sig
        layers.append({"kind": kind, "in": cin, "out": cout, "kernel": list(k), "stride": list(s), "groups": g,
                       "input": list(shape), "calls": count, "ms": {m: 1e3 * v for m, v in t.items()}})
    layers.sort(key=lambda r: -r["calls"] * r["ms"]["fp32_cl"])

    def total(pick: Any) -> float:
        return sum(r["calls"] * pick(r["ms"]) for r in layers)

    sums = {m: total(lambda ms, m=m: ms[m]) for m in MODES}
    sums["fp32_best_layout"] = total(lambda ms: min(ms["fp32_ncdhw"], ms["fp32_cl"]))
    sums["bf16_best_layout"] = total(lambda ms: min(ms["bf16_ncdhw"], ms["bf16_cl"]))
    sums["oracle"] = total(lambda ms: min(ms.values()))
    print(f"{'conv':6s} {'in':>4s} {'out':>4s} {'kernel':>8s} {'stride':>7s} {'input':>22s} {'n':>3s}  "
          + " ".join(f"{m:>10s}" for m in MODES) + "   bf16/fp32 (best layouts)")
    for r in layers:
        ms = r["ms"]
        gain = min(ms["fp32_ncdhw"], ms["fp32_cl"]) / min(ms["bf16_ncdhw"], ms["bf16_cl"])
        print(f"{r['kind']:6s} {r['in']:4d} {r['out']:4d} {'x'.join(map(str, r['kernel'])):>8s} "
              f"{'x'.join(map(str, r['stride'])):>7s} {str(tuple(r['input'])):>22s} {r['calls']:3d}  "
              + " ".join(f"{ms[m]:10.2f}" for m in MODES) + f"   {gain:5.2f}x")
    print("sum over the forward pass's convolutions, fwd + bwd (ms):")
    for m, v in sums.items():
        print(f"  {m:18s} {v:9.1f}")
    print(f"bf16 (best layout per layer) vs fp32 (best layout per layer): "
          f"{sums['fp32_best_layout'] / sums['bf16_best_layout']:.2f}x; oracle per layer vs bf16: "
          f"{sums['bf16_best_layout'] / sums['oracle']:.2f}x")
    result = {"settings": vars(args), "torch": torch.__version__, "layers": layers, "sums_ms": sums}
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
