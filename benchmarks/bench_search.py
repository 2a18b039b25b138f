#!/usr/bin/env python
"""Search-step benchmark of V-NAS (issue 6): one command, one table, one JSON.

    python benchmarks/bench_search.py [--quick] [--output benchmarks/results/search_cpu.json] [--threads N]

Measured in one run, on the same patch, batch and thread count (see ``benchmarks/README.md`` for every row):

- the V-NAS search step (weight step with SGD on one batch, then architecture step with Adam on another, as in
  ``VNASSearchTrainer``: paper Alg. 1, first order) of ``VNASSupernet`` with the fast defaults
  (``conv_impl="auto"``, ``memory_format="auto"``), in the paper's ``mixed`` mode and in the ``sampled`` mode,
  with and without activation checkpointing;
- the same supernet built naively: every candidate a plain ``F.conv3d`` on NCDHW tensors
  (``conv_impl="conv3d"``, ``memory_format="preserve"``), nothing else changed;
- MONAI's DiNTS (``TopologySearch`` + ``DiNTS``) at the parameter count nearest the supernet's, with the
  first-order step of MONAI's DiNTS search tutorial (weight step, then architecture step with its entropy and
  memory-cost terms);
- the achieved convolution GFLOP/s of each step against the measured float32 matrix-product GFLOP/s;
- the peak memory of each step and of the discrete network's (``VNASNet``) training step;
- sliding-window inference voxels per second of ``VNASNet`` against MONAI's ``UNet`` of similar size.

On a CUDA device the same run uses AMP (bfloat16 where supported, else float16 with a gradient scaler), the paper's
96x96x64 patch and ``init_filters`` 64, and projects the GPU-hours of a 40,000-iteration search.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from vnas_monai.networks.cost import conv_mac_counter

# ------------------------------------------------------------------------------------------------ configuration
#: the rows of the step benchmark: name -> how the model is built and stepped
STEP_CONFIGS: dict[str, dict[str, Any]] = {
    "vnas_mixed_fast": dict(model="supernet", search_mode="mixed", fast=True, checkpointing=False),
    "vnas_mixed_fast_ckpt": dict(model="supernet", search_mode="mixed", fast=True, checkpointing=True),
    "vnas_sampled_fast": dict(model="supernet", search_mode="sampled", fast=True, checkpointing=False),
    "vnas_mixed_naive": dict(model="supernet", search_mode="mixed", fast=False, checkpointing=False),
    "dints": dict(model="dints"),
    "vnasnet_train_fast": dict(model="vnasnet", fast=True, checkpointing=False),
    "vnasnet_train_naive": dict(model="vnasnet", fast=False, checkpointing=False),
}
#: rows that also get a peak-memory measurement (each in a fresh process)
MEMORY_CONFIGS = list(STEP_CONFIGS)
GPU_EXTRA = {"vnas_mixed_fast_cl": dict(model="supernet", search_mode="mixed", fast=True, checkpointing=False,
                                        memory_format="channels_last")}

SEARCH_ITERATIONS = 40_000  # paper: 40,000 search iterations per fold
DISCRETE_ARCH = "nih"  # the discrete network of the memory and inference rows (paper's NIH architecture)


def settings(args: argparse.Namespace, cuda: bool) -> dict[str, Any]:
    """Patch, width, batch and repetitions for this run (CPU default, CPU quick, or the paper's GPU setting)."""
    if cuda:
        s = dict(patch=[96, 96, 64], init_filters=64, batch=2, warmup=2, rounds=5, volume=[192, 192, 128],
                 roi=[96, 96, 64], sw_batch=4, infer_repeats=3, amp=True)
    elif args.quick:
        s = dict(patch=[64, 64, 32], init_filters=8, batch=2, warmup=1, rounds=2, volume=[96, 96, 64],
                 roi=[64, 64, 64], sw_batch=2, infer_repeats=2, amp=False)
    else:
        s = dict(patch=[64, 64, 32], init_filters=16, batch=2, warmup=1, rounds=4, volume=[128, 128, 64],
                 roi=[64, 64, 64], sw_batch=2, infer_repeats=3, amp=False)
    for key in ("patch", "init_filters", "batch", "rounds", "warmup"):
        if getattr(args, key, None) is not None:
            s[key] = getattr(args, key)
    if args.no_amp:
        s["amp"] = False
    return s


# ------------------------------------------------------------------------------------------------ models
def vnas_kwargs(cfg: dict[str, Any]) -> dict[str, Any]:
    if cfg.get("fast", True):
        return dict(conv_impl="auto", memory_format=cfg.get("memory_format", "auto"),
                    checkpointing=cfg.get("checkpointing", False))
    # the naive reference: plain conv3d on NCDHW tensors for every candidate, no checkpointing
    return dict(conv_impl="conv3d", memory_format="preserve", checkpointing=False)


def build_supernet(cfg: dict[str, Any], f: int, out_channels: int = 2) -> nn.Module:
    from vnas_monai.networks import VNASSupernet

    return VNASSupernet(3, 1, out_channels, f, search_mode=cfg.get("search_mode", "mixed"), **vnas_kwargs(cfg))


def build_vnasnet(cfg: dict[str, Any], f: int, out_channels: int = 2) -> nn.Module:
    from vnas_monai.networks import VNASNet

    return VNASNet(3, 1, out_channels, DISCRETE_ARCH, f, **vnas_kwargs(cfg))


def param_count(model: nn.Module, exclude: tuple[str, ...] = ()) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if not any(e in n for e in exclude))


def dints_spec(target_params: int, patch: list[int]) -> dict[str, Any]:
    """MONAI DiNTS (``TopologySearch``, 4 depths, ``use_downsample``) with the parameter count nearest
    ``target_params``: ``channel_mul`` from a grid, ``num_blocks`` (linear in the count) solved for."""
    from monai.networks.nets import DiNTS, TopologySearch

    def count(cm: float, nb: int) -> int:
        space = TopologySearch(channel_mul=cm, num_blocks=nb, num_depths=4, use_downsample=True, spatial_dims=3)
        return param_count(DiNTS(space, in_channels=1, num_classes=2, use_downsample=True), ("log_alpha",))

    best = None
    for cm in (0.0625, 0.125, 0.25, 0.5):
        p2, p3 = count(cm, 2), count(cm, 3)
        per_block, base = p3 - p2, p2 - 2 * (p3 - p2)
        for nb in range(2, 13):
            est = base + nb * per_block
            score = abs(math.log(est / target_params))
            if best is None or score < best[0] - 1e-9 or (abs(score - best[0]) < 1e-9 and nb > best[2]):
                best = (score, cm, nb)
    _, cm, nb = best
    return dict(channel_mul=cm, num_blocks=nb, num_depths=4, params=count(cm, nb))


def build_dints(spec: dict[str, Any], device: torch.device) -> nn.Module:
    import logging

    from monai.networks.nets import DiNTS, TopologySearch

    logging.getLogger().setLevel(logging.WARNING)  # DiNTS logs a patch-size hint on every build
    space = TopologySearch(channel_mul=spec["channel_mul"], num_blocks=spec["num_blocks"],
                           num_depths=spec["num_depths"], use_downsample=True, spatial_dims=3, device=str(device))
    return DiNTS(space, in_channels=1, num_classes=2, use_downsample=True)


# ------------------------------------------------------------------------------------------------ steps
class Stepper:
    """Holds one model, its optimizers and two fixed batches; ``step()`` runs one training/search iteration."""

    def __init__(self, name: str, cfg: dict[str, Any], s: dict[str, Any], device: torch.device,
                 dints: dict[str, Any] | None) -> None:
        self.name, self.cfg, self.device = name, cfg, device
        torch.manual_seed(0)
        kind = cfg["model"]
        if kind == "supernet":
            self.model = build_supernet(cfg, s["init_filters"])
        elif kind == "vnasnet":
            self.model = build_vnasnet(cfg, s["init_filters"])
        else:
            self.model = build_dints(dints, device)
        self.model.to(device).train()
        self.amp = bool(s["amp"]) and device.type == "cuda" and cfg.get("fast", True)
        self.amp_dtype = torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp and self.amp_dtype == torch.float16)
        shape = (s["batch"], 1, *s["patch"])
        g = torch.Generator().manual_seed(1)
        self.batches = [
            (
                torch.randn(shape, generator=g).to(device),
                torch.randint(0, 2, (s["batch"], *s["patch"]), generator=g).to(device),
            )
            for _ in range(2)
        ]
        if kind == "supernet":
            self.weights, self.arch = self.model.weight_parameters(), self.model.arch_parameters()
        elif kind == "dints":
            space = self.model.dints_space
            self.arch = [space.log_alpha_a, space.log_alpha_c]
            ids = {id(p) for p in self.arch}
            self.weights = [p for p in self.model.parameters() if id(p) not in ids]
        else:
            self.weights, self.arch = list(self.model.parameters()), []
        # the paper's optimizers (and VNASSearchTrainer's): SGD on weights, Adam on the architecture
        self.wopt = torch.optim.SGD(self.weights, lr=0.05, momentum=0.9, weight_decay=5e-4)
        self.aopt = torch.optim.Adam(self.arch, lr=3e-4, weight_decay=1e-3) if self.arch else None
        self.params = sum(p.numel() for p in self.weights)

    def _autocast(self):
        return torch.autocast("cuda", dtype=self.amp_dtype) if self.amp else nullcontext()

    def _weight_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.wopt.zero_grad(set_to_none=True)
        with self._autocast():
            loss = F.cross_entropy(self.model(x), y)
        self.scaler.scale(loss).backward()
        for p in self.arch:  # first-order DARTS discards the S_train gradient of the architecture
            p.grad = None
        self.scaler.step(self.wopt)
        self.scaler.update()

    def _vnas_arch_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        # as VNASSearchTrainer._arch_step: gradients for alpha/beta only (torch.autograd.grad), then Adam
        self.aopt.zero_grad(set_to_none=True)
        with self._autocast():
            loss = F.cross_entropy(self.model(x), y)
        grads = torch.autograd.grad(self.scaler.scale(loss), self.arch)
        inv = 1.0 / self.scaler.get_scale() if self.scaler.is_enabled() else 1.0
        for p, g in zip(self.arch, grads):
            p.grad = g * inv
        self.aopt.step()

    def _dints_arch_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        # MONAI's DiNTS search tutorial: weights frozen, log_alpha_a/c trainable, CE + entropy + RAM-cost losses
        space = self.model.dints_space
        for p in self.weights:
            p.requires_grad_(False)
        self.aopt.zero_grad(set_to_none=True)
        with self._autocast():
            loss = F.cross_entropy(self.model(x), y)
        probs_a, _ = space.get_prob_a(child=True)
        entropy_a = -(probs_a * torch.log(probs_a + 1e-5)).mean()
        entropy_c = -(F.softmax(space.log_alpha_c, -1) * F.log_softmax(space.log_alpha_c, -1)).mean()
        topology = space.get_topology_entropy(probs_a)
        ram_full = space.get_ram_cost_usage(x.shape, full=True)
        ram = space.get_ram_cost_usage(x.shape)
        loss = loss + (entropy_a + entropy_c) + torch.abs(0.8 - ram / ram_full) + 0.001 * topology
        self.scaler.scale(loss).backward()
        self.scaler.step(self.aopt)
        self.scaler.update()
        for p in self.weights:
            p.requires_grad_(True)

    def step(self) -> None:
        (xw, yw), (xa, ya) = self.batches
        kind = self.cfg["model"]
        if kind == "dints":
            for p in self.arch:
                p.requires_grad_(False)
            self._weight_step(xw, yw)
            for p in self.arch:
                p.requires_grad_(True)
            self._dints_arch_step(xa, ya)
        else:
            self._weight_step(xw, yw)
            if kind == "supernet":
                self._vnas_arch_step(xa, ya)

    def conv_flops(self) -> float:
        """Convolution FLOPs of one step: 2 FLOP per MAC; weight step = forward + input and weight gradients
        (3x forward), architecture step = forward + input gradients (2x forward)."""
        macs = forward_conv_macs(self.model, self.batches[0][0], sampled=self.cfg.get("search_mode") == "sampled")
        passes = {"supernet": 5, "dints": 5, "vnasnet": 3}[self.cfg["model"]]
        return 2.0 * macs * passes


def forward_conv_macs(model: nn.Module, x: torch.Tensor, sampled: bool = False) -> float:
    """MACs of the convolutions of one forward pass on ``x`` (:func:`vnas_monai.networks.cost.conv_mac_counter`);
    a sampled supernet is averaged over 8 draws of its candidates (training mode)."""
    was_training = model.training
    draws = 8 if sampled else 1
    try:
        model.train(sampled)
        with conv_mac_counter(model) as total, torch.no_grad():
            for _ in range(draws):
                model(x)
    finally:
        model.train(was_training)
    return total[0] / draws


# ------------------------------------------------------------------------------------------------ measurement
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def loadavg() -> float | None:
    try:
        return float(open("/proc/loadavg").read().split()[0])
    except OSError:
        return None


def matmul_gflops(device: torch.device, quick: bool) -> float:
    """Best float32 matrix-product rate: n x n @ n x n, 2 n^3 FLOP (TF32 off on CUDA)."""
    n = 4096 if device.type == "cuda" else (1024 if quick else 2048)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    a @ b
    best = float("inf")
    for _ in range(3 if quick else 5):
        sync(device)
        t = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def time_steps(steppers: dict[str, Stepper], warmup: int, rounds: int, device: torch.device) -> dict[str, dict]:
    """Interleaved timing: ``warmup`` untimed steps each, then ``rounds`` rounds of one timed step per model
    (rotating order), so that every model sees the same machine load. Wall and process CPU time per step."""
    for st in steppers.values():
        for _ in range(warmup):
            st.step()
    wall: dict[str, list[float]] = {k: [] for k in steppers}
    cpu: dict[str, list[float]] = {k: [] for k in steppers}
    names = list(steppers)
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            steppers[name].step()
            sync(device)
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
        print(f"  round {r + 1}/{rounds}: " + ", ".join(f"{k} {wall[k][-1]:.2f}s" for k in names) +
              f" (load {loadavg()})", flush=True)
    return {
        k: dict(step_s_min=min(wall[k]), step_s_median=statistics.median(wall[k]), step_s_all=wall[k],
                cpu_s_min=min(cpu[k]))
        for k in names
    }


def _status_kb(key: str) -> int:
    return int(re.search(rf"{key}:\s+(\d+)", open("/proc/self/status").read()).group(1))


def child_memory(name: str, s: dict[str, Any], device: torch.device, dints: dict[str, Any] | None) -> dict:
    """Peak memory of 2 steps of ``name`` in this (fresh) process, above the memory held before the first step."""
    cfg = {**STEP_CONFIGS, **GPU_EXTRA}[name]
    st = Stepper(name, cfg, s, device, dints)
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        for _ in range(2):
            st.step()
        sync(device)
        return dict(peak_mb=(torch.cuda.max_memory_allocated(device) - base) / 2**20, method="cuda_max_allocated")
    base = _status_kb("VmRSS")
    try:  # reset the kernel's RSS high-water mark (Linux >= 4.0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        method = "VmHWM after clear_refs"
    except OSError:
        method = "ru_maxrss"
    for _ in range(2):
        st.step()
    peak = _status_kb("VmHWM")
    return dict(peak_mb=(peak - base) / 1024, method=method, rss_before_mb=base / 1024)


def run_child_memory(name: str, args: argparse.Namespace, dints: dict[str, Any] | None) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--_child-memory", name, "--threads", str(args.threads),
           "--_dints", json.dumps(dints)]
    if args.quick:
        cmd.append("--quick")
    for key in ("init_filters", "batch"):
        if getattr(args, key) is not None:
            cmd += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    if args.patch is not None:
        cmd += ["--patch", *map(str, args.patch)]
    if args.no_amp:
        cmd.append("--no-amp")
    out = subprocess.run(cmd, capture_output=True, text=True)
    for line in out.stdout.splitlines()[::-1]:
        if line.startswith("{"):
            return json.loads(line)
    return dict(error=(out.stderr or out.stdout)[-2000:])


def inference_rows(s: dict[str, Any], device: torch.device, repeats: int) -> dict[str, dict]:
    """Sliding-window inference of one volume: VNASNet (fast and naive) against MONAI UNet of similar size."""
    from monai.inferers import sliding_window_inference
    from monai.networks.nets import UNet

    torch.manual_seed(0)
    fast = build_vnasnet(dict(fast=True), s["init_filters"]).to(device).eval()
    naive = build_vnasnet(dict(fast=False), s["init_filters"]).to(device).eval()
    naive.load_state_dict(fast.state_dict())
    target = param_count(fast)
    unets = {
        c: UNet(3, 1, 2, (c, 2 * c, 4 * c, 8 * c, 16 * c), (2, 2, 2, 2), num_res_units=2)
        for c in (4, 8, 12, 16, 24, 32, 48, 64)
    }
    c = min(unets, key=lambda c: abs(math.log(param_count(unets[c]) / target)))
    unet = unets[c].to(device).eval()
    models = {"vnasnet_fast": fast, "vnasnet_naive": naive, f"monai_unet_c{c}": unet}
    x = torch.randn(1, 1, *s["volume"], device=device)
    amp = s["amp"] and device.type == "cuda"
    half = torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float16
    ctx = (lambda: torch.autocast("cuda", dtype=half)) if amp else nullcontext
    times: dict[str, list[float]] = {k: [] for k in models}
    with torch.no_grad():
        for name, m in models.items():  # warm-up
            with ctx():
                sliding_window_inference(x, s["roi"], s["sw_batch"], m, overlap=0.25)
        for r in range(repeats):
            for name, m in models.items():
                sync(device)
                t = time.perf_counter()
                with ctx():
                    sliding_window_inference(x, s["roi"], s["sw_batch"], m, overlap=0.25)
                sync(device)
                times[name].append(time.perf_counter() - t)
    voxels = x.numel()
    return {
        k: dict(params=param_count(models[k]), time_s_min=min(v), voxels_per_s=voxels / min(v), volume=s["volume"],
                roi=s["roi"], sw_batch_size=s["sw_batch"], overlap=0.25)
        for k, v in times.items()
    }


# ------------------------------------------------------------------------------------------------ report
def fmt(v: Any, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def print_table(result: dict[str, Any]) -> None:
    s, steps, dev = result["settings"], result["steps"], result["device"]
    naive = steps.get("vnas_mixed_naive", {}).get("step_s_min")
    peak = result["matmul_gflops"]
    print()
    print(f"V-NAS search benchmark on {dev['name']} ({dev['threads']} threads), "
          f"patch {'x'.join(map(str, s['patch']))}, "
          f"batch {s['batch']}, init_filters {s['init_filters']}, AMP {s['amp']}; "
          f"fp32 matmul {peak:.1f} GFLOP/s; load average {result['load_before']} -> {result['load_after']}")
    hdr = f"{'step':24s} {'params M':>9s} {'step s min':>10s} {'median':>8s} {'cpu s':>7s} {'vs naive':>8s} " \
          f"{'conv GFLOP/s':>12s} {'% matmul':>8s} {'peak MB':>9s}"
    print(hdr)
    print("-" * len(hdr))
    for name, r in steps.items():
        sp = naive / r["step_s_min"] if naive else None
        mem = result["memory"].get(name, {}).get("peak_mb")
        print(f"{name:24s} {r['params'] / 1e6:9.2f} {r['step_s_min']:10.3f} {r['step_s_median']:8.3f} "
              f"{r['cpu_s_min']:7.2f} {fmt(sp, '7.2f')}x {fmt(r.get('conv_gflops'), '12.2f')} "
              f"{fmt(r.get('pct_of_matmul'), '7.1f')}% {fmt(mem, '9.0f')}")
    print()
    print(f"{'sliding-window inference':24s} {'params M':>9s} {'time s':>10s} {'Mvoxel/s':>10s}")
    for name, r in result["inference"].items():
        print(f"{name:24s} {r['params'] / 1e6:9.2f} {r['time_s_min']:10.2f} {r['voxels_per_s'] / 1e6:10.3f}")
    print(f"  ({'x'.join(map(str, s['volume']))} volume, {'x'.join(map(str, s['roi']))} windows, overlap 0.25)")
    print()
    for k, v in result["checks"].items():
        print(f"{k}: {v}")
    if "projection" in result:
        print(result["projection"])


def checks(result: dict[str, Any]) -> dict[str, Any]:
    st, mem = result["steps"], result["memory"]
    out: dict[str, Any] = {}
    naive = st["vnas_mixed_naive"]["step_s_min"]
    fast = st["vnas_mixed_fast"]["step_s_min"]
    out["mixed_step_speedup_vs_naive"] = round(naive / fast, 3)
    out["sampled_step_speedup_vs_naive_mixed"] = round(naive / st["vnas_sampled_fast"]["step_s_min"], 3)
    out["mixed_step_at_least_3x_faster_than_naive"] = naive / fast >= 3.0
    out["mixed_step_faster_than_dints"] = fast < st["dints"]["step_s_min"]
    out["mixed_step_speedup_vs_dints"] = round(st["dints"]["step_s_min"] / fast, 3)
    out["params_ratio_dints_to_supernet"] = round(st["dints"]["params"] / st["vnas_mixed_fast"]["params"], 3)
    ck, dn = mem.get("vnas_mixed_fast_ckpt", {}).get("peak_mb"), mem.get("vnasnet_train_fast", {}).get("peak_mb")
    if ck and dn:
        out["supernet_ckpt_peak_over_discrete_train_peak"] = round(ck / dn, 3)
        out["supernet_ckpt_peak_at_most_1.5x_discrete"] = ck / dn <= 1.5
    return out


# ------------------------------------------------------------------------------------------------ main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small run (init_filters 8, fewer repeats): about 2 min")
    p.add_argument("--output", default=None, help="JSON file (default benchmarks/results/search_<device>[_quick].json)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch intra-op threads")
    p.add_argument("--device", default="auto", help="'auto' (CUDA if available), 'cpu' or 'cuda'")
    p.add_argument("--init-filters", dest="init_filters", type=int, default=None)
    p.add_argument("--patch", type=int, nargs=3, default=None)
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--rounds", type=int, default=None, help="timed steps per model")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps per model")
    p.add_argument("--no-amp", dest="no_amp", action="store_true", help="float32 also on CUDA")
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--skip-inference", action="store_true")
    p.add_argument("--_child-memory", dest="child_memory", default=None, help=argparse.SUPPRESS)
    p.add_argument("--_dints", dest="dints", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    s = settings(args, device.type == "cuda")
    if args.child_memory:
        print(json.dumps(child_memory(args.child_memory, s, device, json.loads(args.dints))), flush=True)
        return {}

    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or platform.machine()
        try:
            name = re.search(r"model name\s*:\s*(.*)", open("/proc/cpuinfo").read()).group(1)
        except (OSError, AttributeError):
            pass
    result: dict[str, Any] = dict(
        device=dict(type=device.type, name=name, threads=args.threads, torch=torch.__version__,
                    cpu_capability=torch.backends.cpu.get_cpu_capability(), cpu_count=os.cpu_count()),
        settings=s, load_before=loadavg(), started=time.strftime("%Y-%m-%d %H:%M:%S"),
    )
    t_start = time.time()
    print(f"device {name}, {args.threads} threads, settings {s}", flush=True)
    result["matmul_gflops"] = matmul_gflops(device, args.quick)
    print(f"fp32 matmul: {result['matmul_gflops']:.1f} GFLOP/s", flush=True)

    configs = dict(STEP_CONFIGS)
    if device.type == "cuda":
        configs.update(GPU_EXTRA)
    target = param_count(build_supernet(dict(fast=True), s["init_filters"]), ("alpha", "beta"))
    dints = dints_spec(target, s["patch"])
    result["dints_spec"] = dints
    print(f"DiNTS: {dints}", flush=True)

    steppers = {k: Stepper(k, cfg, s, device, dints) for k, cfg in configs.items()}
    print(f"timing {len(steppers)} models: {s['warmup']} warm-up + {s['rounds']} interleaved timed steps each",
          flush=True)
    steps = time_steps(steppers, s["warmup"], s["rounds"], device)
    for k, st in steppers.items():
        flops = st.conv_flops()
        steps[k].update(params=st.params, conv_gflop_per_step=flops / 1e9,
                        conv_gflops=flops / 1e9 / steps[k]["step_s_min"])
        steps[k]["pct_of_matmul"] = 100 * steps[k]["conv_gflops"] / result["matmul_gflops"]
        steps[k]["config"] = {**configs[k], **({} if configs[k]["model"] == "dints" else vnas_kwargs(configs[k]))}
    result["steps"] = steps
    del steppers

    result["memory"] = {}
    if not args.skip_memory:
        for k in configs:
            print(f"peak memory of {k} (fresh process) ...", flush=True)
            result["memory"][k] = run_child_memory(k, args, dints)
    result["inference"] = {} if args.skip_inference else inference_rows(s, device, s["infer_repeats"])
    result["checks"] = checks(result)
    if device.type == "cuda":
        st = steps["vnas_mixed_fast"]["step_s_min"]
        result["projection"] = dict(
            iterations=SEARCH_ITERATIONS, step_s=st, gpu_hours=st * SEARCH_ITERATIONS / 3600,
            gpu_hours_sampled=steps["vnas_sampled_fast"]["step_s_min"] * SEARCH_ITERATIONS / 3600,
            gpu_hours_naive=steps["vnas_mixed_naive"]["step_s_min"] * SEARCH_ITERATIONS / 3600,
            paper="1.2 V100 GPU-days (28.8 GPU-hours) per fold",
        )
    result["load_after"] = loadavg()
    result["wall_s"] = time.time() - t_start
    print_table(result)
    out = args.output or (Path(__file__).parent / "results" /
                          f"search_{device.type}{'_quick' if args.quick else ''}.json")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=2))
    print(f"\nwrote {out} ({result['wall_s']:.0f} s)")
    return result


if __name__ == "__main__":
    main()
