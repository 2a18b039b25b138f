#!/usr/bin/env python
"""Where the time of a mixed search step goes, per precision, and the most that faster convolutions could give
(issues 6 and 12).

    python benchmarks/profile_search_step.py [--precision fp32[,bf16]] [--threads N] [--steps 2] [--output FILE]
           [--init-filters F] [--patch H W D] [--batch B]

Profiles (``torch.profiler``, CPU) the same search steps as ``bench_search.py`` (weight step + architecture step,
same patch, batch, width, batches and precision policy: forward passes under ``resolve_precision(p).autocast()``,
the loss on float32 logits) for the fast supernet (``vnas_mixed_fast``) and the naive Conv3d one
(``vnas_mixed_naive``), once per precision of ``--precision`` (default ``fp32``, the earlier output;
``--precision fp32,bf16`` prints the two side by side), and splits each one's self CPU time into convolution
(forward, backward and the matrix products of the 1x1x1 convs), batch norm (forward and backward) and everything
else (activations, the weighted sums of the candidates, concatenations, copies and dtype casts, pooling, loss,
optimizer). Amdahl's bound follows: with convolutions of zero cost a step would still take its non-convolution
time, so the speed-up over the naive step cannot exceed ``naive total / fast non-convolution time``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_search  # noqa: E402  (the benchmark's models, batches, precisions and steps)

#: profiler op name -> category; anything else is "other"
CATEGORIES = {
    "aten::convolution_backward": "convolution",
    "aten::mkldnn_convolution": "convolution",
    "aten::_convolution": "convolution",
    "aten::convolution": "convolution",
    "aten::conv3d": "convolution",
    "aten::conv2d": "convolution",
    "aten::mm": "convolution",
    "aten::addmm": "convolution",
    "aten::bmm": "convolution",
    "aten::native_batch_norm": "batch norm",
    "aten::native_batch_norm_backward": "batch norm",
    "aten::_batch_norm_impl_index": "batch norm",
    "aten::batch_norm": "batch norm",
}
PARTS = ("convolution", "batch norm", "other")
ROWS = ("vnas_mixed_fast", "vnas_mixed_naive")


def profile_steps(name: str, s: dict, steps: int, precision: str = "fp32") -> dict[str, float]:
    """Self CPU seconds per step of each category for one row of ``bench_search.STEP_CONFIGS`` in ``precision``."""
    stepper = bench_search.Stepper(name, bench_search.STEP_CONFIGS[name], s, torch.device("cpu"), None, precision)
    for _ in range(2):  # warm-up: oneDNN primitive caches, allocator
        stepper.step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            stepper.step()
    out = {part: 0.0 for part in PARTS}
    for event in prof.key_averages():
        out[CATEGORIES.get(event.key, "other")] += event.self_cpu_time_total / 1e6 / steps
    out["total"] = sum(out.values())
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--precision", default="fp32",
                    help="comma-separated precisions profiled one after the other (default fp32; e.g. fp32,bf16)")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--steps", type=int, default=2, help="profiled steps per model and precision")
    ap.add_argument("--init-filters", dest="init_filters", type=int, default=None, help="default: bench_search's 16")
    ap.add_argument("--patch", type=int, nargs=3, default=None, help="default: bench_search's 64 64 32")
    ap.add_argument("--batch", type=int, default=None, help="default: bench_search's 2")
    ap.add_argument("--output", default=str(Path(__file__).parent / "results" / "profile_search_step_cpu.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    bench_argv = ["--precisions", args.precision]
    for k in ("init_filters", "batch"):
        if getattr(args, k) is not None:
            bench_argv += [f"--{k.replace('_', '-')}", str(getattr(args, k))]
    if args.patch is not None:
        bench_argv += ["--patch", *map(str, args.patch)]
    s = bench_search.settings(bench_search.parse_args(bench_argv), cuda=False)
    precisions = s["precisions"]
    rows = {p: {name: profile_steps(name, s, args.steps, p) for name in ROWS} for p in precisions}
    bounds = {p: r["vnas_mixed_naive"]["total"] / (r["vnas_mixed_fast"]["total"] - r["vnas_mixed_fast"]["convolution"])
              for p, r in rows.items()}

    print(f"\nself CPU seconds per search step (patch {s['patch']}, batch {s['batch']}, init_filters "
          f"{s['init_filters']}, {args.threads} threads; profiler overhead included)\n")
    print("| supernet | precision | convolution | batch norm | other | total |")
    print("|---|---|---|---|---|---|")
    for name in ROWS:  # the precisions of one supernet side by side
        for p in precisions:
            row = rows[p][name]
            cells = " | ".join(f"{row[k]:.3f} ({100 * row[k] / row['total']:.0f} %)" for k in PARTS)
            print(f"| {name} | {p} | {cells} | {row['total']:.3f} |")
    if "fp32" in precisions and len(precisions) > 1:
        print("\nspeed-up over fp32 (fp32 time / this precision's time), per part:\n")
        print("| supernet | precision | convolution | batch norm | other | total |")
        print("|---|---|---|---|---|---|")
        for name in ROWS:
            for p in precisions:
                if p != "fp32":
                    base, row = rows["fp32"][name], rows[p][name]
                    cells = " | ".join(f"{base[k] / row[k]:.2f}x" if row[k] else "-" for k in (*PARTS, "total"))
                    print(f"| {name} | {p} | {cells} |")
    print()
    for p in precisions:
        fast, naive = rows[p]["vnas_mixed_fast"], rows[p]["vnas_mixed_naive"]
        print(f"{p}: fast vs naive (profiled) {naive['total'] / fast['total']:.2f}x; with convolutions of zero cost "
              f"the fast step could be at most {bounds[p]:.2f}x faster than the naive one; the naive step's work other "
              f"than convolution takes {naive['total'] - naive['convolution']:.3f} s, the fast step's "
              f"{fast['total'] - fast['convolution']:.3f} s")
    result = {"settings": s, "threads": args.threads, "steps": args.steps, "precisions": precisions, "rows": rows,
              "amdahl_bound_vs_naive": bounds, "torch": torch.__version__}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.output}")
    return result


if __name__ == "__main__":
    main()
