#!/usr/bin/env python
"""Search-step benchmark of V-NAS (issues 6 and 12): one command, one table, one JSON, fp32 and bf16 side by side.

    python benchmarks/bench_search.py [--quick] [--precisions fp32,bf16] [--output FILE] [--threads N]

Measured in one run, on the same patch, batch and thread count, once per precision of ``--precisions`` (default
``fp32,bf16``; on a CUDA device without bf16 ``fp32,fp16``), every row timed interleaved with every other (see
``benchmarks/README.md`` for every row and column):

- the V-NAS search step (weight step with SGD on one batch, then architecture step with Adam on another, as in
  ``VNASSearchTrainer``: paper Alg. 1, first order) of ``VNASSupernet`` built as the bundles build it
  (``conv_impl="auto"``, ``memory_format="auto"``: on the CPU NCDHW in bf16 training below ``init_filters`` 32,
  else channels-last), in the
  paper's ``mixed`` mode and in the ``sampled`` mode, with and without activation checkpointing;
- the same supernet built naively: every candidate a plain ``F.conv3d`` on NCDHW tensors
  (``conv_impl="conv3d"``, ``memory_format="preserve"``), nothing else changed;
- MONAI's DiNTS (``TopologySearch`` + ``DiNTS``) at the parameter count nearest the supernet's, with the
  first-order step of MONAI's DiNTS search tutorial (weight step, then architecture step with its entropy and
  memory-cost terms);
- the discrete network's (``VNASNet``) retraining step;
- the achieved convolution GFLOP/s of each step against the float32 and the bfloat16 matrix-product GFLOP/s, both
  measured in the same run;
- the peak memory of each step and precision (each in a fresh process);
- sliding-window inference voxels per second of ``VNASNet`` against MONAI's ``UNet`` of similar size.

Each precision is a :func:`vnas_monai.engine.precision.resolve_precision` policy: forward passes under its
``autocast()``, the loss on ``float_logits(pred)`` (float32), a ``GradScaler`` for fp16 only; parameters and
optimizer states stay float32. ``checks`` evaluates issue 12's targets (bf16 iteration vs today's fp32 one, vs DiNTS
at its better precision, % of the fp32 matmul rate, retraining and inference speed-ups). On a CUDA device the run
uses the paper's 96x96x64 patch and ``init_filters`` 64, and projects the GPU-hours of a 40,000-iteration search.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from vnas_monai.engine.architect import Architect
from vnas_monai.engine.host_memory import keep_freed_memory
from vnas_monai.engine.precision import PrecisionPolicy, cpu_bf16_matmul, float_logits, resolve_precision
from vnas_monai.networks.cost import conv_mac_counter

# ------------------------------------------------------------------------------------------------ configuration
#: the rows of the step benchmark: name -> how the model is built and stepped (each row runs once per precision)
STEP_CONFIGS: dict[str, dict[str, Any]] = {
    "vnas_mixed_fast": dict(model="supernet", search_mode="mixed", fast=True, checkpointing=False),
    "vnas_mixed_fast_ckpt": dict(model="supernet", search_mode="mixed", fast=True, checkpointing=True),
    "vnas_sampled_fast": dict(model="supernet", search_mode="sampled", fast=True, checkpointing=False),
    "vnas_mixed_naive": dict(model="supernet", search_mode="mixed", fast=False, checkpointing=False),
    "dints": dict(model="dints"),
    "vnasnet_train_fast": dict(model="vnasnet", fast=True, checkpointing=False),
    "vnasnet_train_naive": dict(model="vnasnet", fast=False, checkpointing=False),
}
#: rows run by default on CUDA only, on CPU when named in ``--rows``: the supernet forced channels-last (in bf16 too)
GPU_EXTRA = {"vnas_mixed_fast_cl": dict(model="supernet", search_mode="mixed", fast=True, checkpointing=False,
                                        memory_format="channels_last")}
ALL_CONFIGS = {**STEP_CONFIGS, **GPU_EXTRA}

SEARCH_ITERATIONS = 40_000  # paper: 40,000 search iterations per fold
DISCRETE_ARCH = "nih"  # the discrete network of the memory and inference rows (paper's NIH architecture)
FP32 = "fp32"


def default_precisions(device: torch.device) -> list[str]:
    """fp32 and bf16 (fp32 and fp16 on a CUDA device without bf16 support)."""
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return [FP32, "fp16"]
    return [FP32, "bf16"]


def parse_precisions(text: str | None, device: torch.device) -> list[str]:
    """``"fp32,bf16"`` -> ["fp32", "bf16"], each checked by ``resolve_precision`` (``auto`` resolved, duplicates
    dropped)."""
    if not text:
        return default_precisions(device)
    out: list[str] = []
    for item in text.split(","):
        if item.strip():
            name = resolve_precision(item, device).name
            if name not in out:
                out.append(name)
    if not out:
        raise ValueError(f"--precisions {text!r} names no precision.")
    return out


def low_precision(precisions: list[str]) -> str | None:
    """The mixed precision the issue's targets compare against fp32: bf16, else fp16."""
    return next((p for p in ("bf16", "fp16") if p in precisions), None)


def settings(args: argparse.Namespace, cuda: bool) -> dict[str, Any]:
    """Patch, width, batch, repetitions and precisions for this run (CPU default, CPU quick, or the paper's GPU
    setting)."""
    if cuda:
        s = dict(patch=[96, 96, 64], init_filters=64, batch=2, warmup=2, rounds=5, volume=[192, 192, 128],
                 roi=[96, 96, 64], sw_batch=4, infer_repeats=3)
    elif args.quick:
        s = dict(patch=[64, 64, 32], init_filters=8, batch=2, warmup=1, rounds=2, volume=[96, 96, 64],
                 roi=[64, 64, 64], sw_batch=2, infer_repeats=2)
    else:
        s = dict(patch=[64, 64, 32], init_filters=16, batch=2, warmup=1, rounds=4, volume=[128, 128, 64],
                 roi=[64, 64, 64], sw_batch=2, infer_repeats=3)
    for key in ("patch", "init_filters", "batch", "rounds", "warmup", "volume", "roi", "full_resolution_channels"):
        if getattr(args, key, None) is not None:
            s[key] = getattr(args, key)
    s["precisions"] = parse_precisions(getattr(args, "precisions", None), torch.device("cuda" if cuda else "cpu"))
    return s


def row_names(args: argparse.Namespace, cuda: bool) -> list[str]:
    """The step rows of this run: ``--rows`` (comma-separated), else every row of ``STEP_CONFIGS`` (plus
    ``GPU_EXTRA`` on CUDA)."""
    if getattr(args, "rows", None):
        names = [r.strip() for r in args.rows.split(",") if r.strip()]
        unknown = [r for r in names if r not in ALL_CONFIGS]
        if unknown:
            raise ValueError(f"--rows: unknown rows {unknown}; choose from {list(ALL_CONFIGS)}.")
        return names
    return list(STEP_CONFIGS) + (list(GPU_EXTRA) if cuda else [])


# ------------------------------------------------------------------------------------------------ models
def vnas_kwargs(cfg: dict[str, Any]) -> dict[str, Any]:
    if cfg.get("fast", True):
        # as the bundles build the networks (the defaults): measured-fastest conv forms; on the CPU NCDHW in bf16
        # training of narrow networks (init_filters < 32), channels-last otherwise
        return dict(conv_impl="auto", memory_format=cfg.get("memory_format", "auto"),
                    checkpointing=cfg.get("checkpointing", False))
    # the naive reference: plain conv3d on NCDHW tensors for every candidate, no checkpointing
    return dict(conv_impl="conv3d", memory_format="preserve", checkpointing=False)


def build_supernet(cfg: dict[str, Any], f: int, out_channels: int = 2) -> nn.Module:
    from vnas_monai.spaces.vnas import VNASSupernet

    return VNASSupernet(3, 1, out_channels, f, search_mode=cfg.get("search_mode", "mixed"), **vnas_kwargs(cfg))


def build_vnasnet(cfg: dict[str, Any], f: int, out_channels: int = 2, full_resolution_channels: int = 0) -> nn.Module:
    from vnas_monai.spaces.vnas import VNASNet

    return VNASNet(3, 1, out_channels, DISCRETE_ARCH, f, full_resolution_channels=full_resolution_channels,
                   **vnas_kwargs(cfg))


def param_count(model: nn.Module, exclude: tuple[str, ...] = ()) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if not any(e in n for e in exclude))


def dints_spec(target_params: int, patch: list[int]) -> dict[str, Any]:
    """MONAI DiNTS (``TopologySearch``, 4 depths, ``use_downsample``) with the parameter count nearest
    ``target_params``: ``channel_mul`` from a grid, ``num_blocks`` (linear in the count) solved for."""
    from monai.networks.nets import DiNTS

    def count(cm: float, nb: int) -> int:
        space = _topology_search(channel_mul=cm, num_blocks=nb, num_depths=4, use_downsample=True, spatial_dims=3)
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


def _topology_search(**kwargs: Any) -> nn.Module:
    """``monai.networks.nets.TopologySearch(**kwargs)`` without the patch-size hint it prints on every build."""
    from monai.networks.nets import TopologySearch

    with contextlib.redirect_stdout(io.StringIO()):
        return TopologySearch(**kwargs)


def build_dints(spec: dict[str, Any], device: torch.device) -> nn.Module:
    from monai.networks.nets import DiNTS

    space = _topology_search(channel_mul=spec["channel_mul"], num_blocks=spec["num_blocks"],
                             num_depths=spec["num_depths"], use_downsample=True, spatial_dims=3, device=str(device))
    return DiNTS(space, in_channels=1, num_classes=2, use_downsample=True)


# ------------------------------------------------------------------------------------------------ steps
class Stepper:
    """Holds one model, its optimizers and two fixed batches; ``step()`` runs one training/search iteration under
    ``precision`` (a name or a ``PrecisionPolicy``): forward passes under its autocast, losses on float32 logits,
    a gradient scaler per optimizer for fp16 only (as ``VNASSearchTrainer``). Same seeds whatever the precision,
    so the rows of one model start from the same weights and batches."""

    def __init__(self, name: str, cfg: dict[str, Any], s: dict[str, Any], device: torch.device,
                 dints: dict[str, Any] | None, precision: str | PrecisionPolicy = FP32) -> None:
        self.name, self.cfg, self.device = name, cfg, device
        self.policy = resolve_precision(precision, device)
        torch.manual_seed(0)
        kind = cfg["model"]
        if kind == "supernet":
            self.model = build_supernet(cfg, s["init_filters"])
        elif kind == "vnasnet":
            self.model = build_vnasnet(cfg, s["init_filters"])
        else:
            self.model = build_dints(dints, device)
        self.model.to(device).train()
        self.scaler = self.policy.grad_scaler()
        self.arch_scaler = self.policy.grad_scaler()
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
        # V-NAS's architecture step is VNASSearchTrainer's own (vnas_monai.engine.Architect)
        self.architect = Architect(self.aopt, F.cross_entropy, self.policy) if kind == "supernet" else None
        self.params = sum(p.numel() for p in self.weights)

    def _loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with self.policy.autocast():
            pred = self.model(x)
        return F.cross_entropy(float_logits(pred), y)

    def _weight_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.wopt.zero_grad(set_to_none=True)
        loss = self._loss(x, y)
        self.scaler.scale(loss).backward()
        for p in self.arch:  # first-order DARTS discards the S_train gradient of the architecture
            p.grad = None
        self.scaler.step(self.wopt)
        self.scaler.update()

    def _vnas_arch_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.architect.step(self.model, x, y)

    def _dints_arch_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        # MONAI's DiNTS search tutorial: weights frozen, log_alpha_a/c trainable, CE + entropy + RAM-cost losses
        space = self.model.dints_space
        for p in self.weights:
            p.requires_grad_(False)
        self.aopt.zero_grad(set_to_none=True)
        loss = self._loss(x, y)
        probs_a, _ = space.get_prob_a(child=True)
        entropy_a = -(probs_a * torch.log(probs_a + 1e-5)).mean()
        entropy_c = -(F.softmax(space.log_alpha_c, -1) * F.log_softmax(space.log_alpha_c, -1)).mean()
        topology = space.get_topology_entropy(probs_a)
        ram_full = space.get_ram_cost_usage(x.shape, full=True)
        ram = space.get_ram_cost_usage(x.shape)
        loss = loss + (entropy_a + entropy_c) + torch.abs(0.8 - ram / ram_full) + 0.001 * topology
        self.arch_scaler.scale(loss).backward()
        self.arch_scaler.step(self.aopt)
        self.arch_scaler.update()
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
        (3x forward), architecture step = forward + input gradients (2x forward). The same in every precision."""
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


def key(row: str, precision: str) -> str:
    """The name of one (row, precision) stepper in the interleaved timing, e.g. ``vnas_mixed_fast@bf16``."""
    return f"{row}@{precision}"


# ------------------------------------------------------------------------------------------------ measurement
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def loadavg() -> float | None:
    try:
        return float(open("/proc/loadavg").read().split()[0])
    except OSError:
        return None


_MATMUL_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def matmul_gflops(device: torch.device, quick: bool, dtype: str | torch.dtype = torch.float32) -> float:
    """Best matrix-product rate in ``dtype`` (``"fp32"``, ``"bf16"``, ``"fp16"`` or a torch dtype):
    n x n @ n x n, 2 n^3 FLOP, n = 2048 on CPU, 4096 on CUDA (TF32 off, so fp32 is true float32)."""
    dtype = _MATMUL_DTYPES.get(dtype, dtype) if isinstance(dtype, str) else dtype
    n = 4096 if device.type == "cuda" else 2048
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    a @ b
    best = float("inf")
    for _ in range(3 if quick else 5):
        sync(device)
        t = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def matmul_rates(device: torch.device, quick: bool, precisions: list[str]) -> dict[str, float]:
    """The fp32 and the bf16 matrix-product rates (bf16 skipped on a CUDA device without it) and that of any other
    precision of the run, measured one after the other in this run."""
    names = [FP32] + (["bf16"] if device.type != "cuda" or torch.cuda.is_bf16_supported() else [])
    names += [p for p in precisions if p not in names]
    return {p: matmul_gflops(device, quick, p) for p in names}


def time_steps(steppers: dict[str, Stepper], warmup: int, rounds: int, device: torch.device) -> dict[str, dict]:
    """Interleaved timing: ``warmup`` untimed steps each, then ``rounds`` rounds of one timed step per stepper
    (every row in every precision, rotating order), so that every one sees the same machine load. Wall and process
    CPU time per step."""
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


def _status_kb(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+)", open("/proc/self/status").read()).group(1))


def child_memory(name: str, precision: str, s: dict[str, Any], device: torch.device,
                 dints: dict[str, Any] | None) -> dict:
    """Peak memory of 2 steps of ``name`` in ``precision`` in this (fresh) process, above the memory held before
    the first step."""
    st = Stepper(name, ALL_CONFIGS[name], s, device, dints, precision)
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


def run_child_memory(name: str, precision: str, args: argparse.Namespace, device: torch.device,
                     dints: dict[str, Any] | None) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--_child-memory", name, "--_precision", precision,
           "--threads", str(args.threads), "--device", device.type, "--_dints", json.dumps(dints)]
    if args.quick:
        cmd.append("--quick")
    if args.system_malloc:
        cmd.append("--system-malloc")
    for k in ("init_filters", "batch"):
        if getattr(args, k) is not None:
            cmd += [f"--{k.replace('_', '-')}", str(getattr(args, k))]
    if args.patch is not None:
        cmd += ["--patch", *map(str, args.patch)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    for line in out.stdout.splitlines()[::-1]:
        if line.startswith("{"):
            return json.loads(line)
    return dict(error=(out.stderr or out.stdout)[-2000:])


def inference_rows(s: dict[str, Any], device: torch.device, repeats: int) -> dict[str, dict[str, dict]]:
    """Sliding-window inference of one volume, once per precision: VNASNet (fast and naive) against MONAI UNet of
    similar size. As ``PrecisionEvaluator``: the inferer under the policy's autocast, the prediction cast to
    float32 (MONAI aggregates the windows in the input's dtype, float32). Every (model, precision) timed
    interleaved, ``repeats`` times after one warm-up each: {model: {precision: row}}."""
    from monai.inferers import sliding_window_inference
    from monai.networks.nets import UNet

    torch.manual_seed(0)
    fr = s.get("full_resolution_channels", 0)
    fast = build_vnasnet(dict(fast=True), s["init_filters"], full_resolution_channels=fr).to(device).eval()
    naive = build_vnasnet(dict(fast=False), s["init_filters"], full_resolution_channels=fr).to(device).eval()
    naive.load_state_dict(fast.state_dict())
    target = param_count(fast)
    unets = {
        c: UNet(3, 1, 2, (c, 2 * c, 4 * c, 8 * c, 16 * c), (2, 2, 2, 2), num_res_units=2)
        for c in (4, 8, 12, 16, 24, 32, 48, 64)
    }
    c = min(unets, key=lambda c: abs(math.log(param_count(unets[c]) / target)))
    unet = unets[c].to(device).eval()
    models = {"vnasnet_fast": fast, "vnasnet_naive": naive, f"monai_unet_c{c}": unet}
    policies = {p: resolve_precision(p, device) for p in s["precisions"]}
    x = torch.randn(1, 1, *s["volume"], device=device)
    runs = [(m, p) for m in models for p in policies]

    def infer(m: str, p: str) -> torch.Tensor:
        with policies[p].autocast():
            pred = sliding_window_inference(x, s["roi"], s["sw_batch"], models[m], overlap=0.25)
        return float_logits(pred)

    times: dict[tuple[str, str], list[float]] = {r: [] for r in runs}
    with torch.no_grad():
        for m, p in runs:  # warm-up
            infer(m, p)
        for r in range(repeats):
            for m, p in runs[r % len(runs):] + runs[: r % len(runs)]:
                sync(device)
                t = time.perf_counter()
                infer(m, p)
                sync(device)
                times[(m, p)].append(time.perf_counter() - t)
    voxels = x.numel()
    out: dict[str, dict[str, dict]] = {m: {} for m in models}
    for (m, p), v in times.items():
        out[m][p] = dict(params=param_count(models[m]), time_s_min=min(v), time_s_all=v, voxels_per_s=voxels / min(v),
                         volume=s["volume"], roi=s["roi"], sw_batch_size=s["sw_batch"], overlap=0.25)
    for rows in out.values():
        base = rows.get(FP32, {}).get("time_s_min")
        for r in rows.values():
            r["speedup_vs_fp32"] = base / r["time_s_min"] if base else None
    return out


# ------------------------------------------------------------------------------------------------ report
def fmt(v: Any, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def fmt_x(v: float | None, width: int) -> str:
    """A ratio as ``1.23x`` right-aligned in ``width`` characters, ``-`` when there is none."""
    return ("-" if v is None else f"{v:.2f}x").rjust(width)


def _get(d: dict, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def print_table(result: dict[str, Any]) -> None:
    s, steps, dev, rates = result["settings"], result["steps"], result["device"], result["matmul_gflops"]
    print()
    probe = f"; {dev['cpu_bf16_matmul'][1]}" if dev["type"] == "cpu" else ""
    print(f"V-NAS search benchmark on {dev['name']} ({dev['threads']} threads{probe}), "
          f"patch {'x'.join(map(str, s['patch']))}, batch {s['batch']}, init_filters {s['init_filters']}, "
          f"precisions {', '.join(s['precisions'])}; matmul GFLOP/s "
          + ", ".join(f"{p} {v:.1f}" for p, v in rates.items())
          + f"; load average {result['load_before']} -> {result['load_after']}")
    hdr = (f"{'step':24s} {'prec':>4s} {'params M':>8s} {'step s min':>10s} {'median':>7s} {'cpu s':>6s} "
           f"{'vs naive':>8s} {'vs fp32':>7s} {'conv GFLOP/s':>12s} "
           + " ".join(f"{'% ' + p + ' mm':>9s}" for p in rates) + f" {'peak MB':>8s}")
    print(hdr)
    print("-" * len(hdr))
    for name, per in steps.items():
        for p, r in per.items():
            naive = _get(steps, "vnas_mixed_naive", p, "step_s_min")
            sp = naive / r["step_s_min"] if naive else None
            mem = _get(result["memory"], name, p, "peak_mb")
            pct = " ".join(fmt(r["pct_of_matmul"].get(d), "8.1f") + "%" for d in rates)
            print(f"{name:24s} {p:>4s} {r['params'] / 1e6:8.2f} {r['step_s_min']:10.3f} {r['step_s_median']:7.3f} "
                  f"{r['cpu_s_min']:6.2f} {fmt_x(sp, 8)} {fmt_x(r.get('speedup_vs_fp32'), 7)} "
                  f"{fmt(r.get('conv_gflops'), '12.2f')} {pct} {fmt(mem, '8.0f')}")
    if result["inference"]:
        print()
        print(f"{'sliding-window inference':24s} {'prec':>4s} {'params M':>8s} {'time s':>10s} {'Mvoxel/s':>10s} "
              f"{'vs fp32':>7s}")
        for name, per in result["inference"].items():
            for p, r in per.items():
                print(f"{name:24s} {p:>4s} {r['params'] / 1e6:8.2f} {r['time_s_min']:10.2f} "
                      f"{r['voxels_per_s'] / 1e6:10.3f} {fmt_x(r.get('speedup_vs_fp32'), 7)}")
        print(f"  ({'x'.join(map(str, s['volume']))} volume, {'x'.join(map(str, s['roi']))} windows, overlap 0.25)")
    print()
    for k, v in result["checks"].items():
        print(f"{k}: {v}")
    if "projection" in result:
        print(result["projection"])


def checks(result: dict[str, Any]) -> dict[str, Any]:
    """Issue 12's must-show ratios (the low precision, bf16 or fp16, against fp32), then issue 6's checks per
    precision. A ratio whose rows were not run (``--rows``, ``--skip-*``) is left out."""
    st, mem, inf = result["steps"], result["memory"], result["inference"]
    precs, rates = result["settings"]["precisions"], result["matmul_gflops"]
    lo = low_precision(precs)
    out: dict[str, Any] = {}

    def t(row: str, p: str) -> float | None:
        return _get(st, row, p, "step_s_min")

    def ratio(name: str, num: float | None, den: float | None, goal: float | None = None, digits: int = 3) -> None:
        if num and den:
            out[name] = round(num / den, digits)
            if goal is not None:
                out[f"{name}_at_least_{goal:g}x"] = num / den >= goal

    if lo and FP32 in precs:
        out["low_precision"] = lo
        new = t("vnas_mixed_fast", lo)
        # today's iteration: what the bundle ran before issue 12 (float32, channels-last: memory_format "auto")
        ratio(f"mixed_iteration_{lo}_speedup_vs_fp32", t("vnas_mixed_fast", FP32), new, 3.0)
        dints = {p: t("dints", p) for p in precs if t("dints", p)}
        if dints and new:
            best = min(dints, key=dints.get)
            out["dints_best_precision"] = best
            ratio(f"mixed_iteration_{lo}_speedup_vs_dints_best", dints[best], new, 2.0)
            out["params_ratio_dints_to_supernet"] = round(st["dints"][best]["params"] /
                                                          st["vnas_mixed_fast"][lo]["params"], 3)
        gf = _get(st, "vnas_mixed_fast", lo, "conv_gflops")
        if gf:
            out[f"mixed_iteration_{lo}_gflops"] = round(gf, 2)
            out[f"mixed_iteration_{lo}_pct_of_fp32_matmul"] = round(100 * gf / rates[FP32], 2)
            out[f"mixed_iteration_{lo}_at_least_20pct_of_fp32_matmul"] = 100 * gf / rates[FP32] >= 20.0
            if lo in rates:
                out[f"mixed_iteration_{lo}_pct_of_{lo}_matmul"] = round(100 * gf / rates[lo], 2)
        ratio(f"sampled_iteration_{lo}_speedup_vs_fp32", t("vnas_sampled_fast", FP32), t("vnas_sampled_fast", lo))
        ratio(f"dints_{lo}_speedup_vs_fp32", t("dints", FP32), t("dints", lo))
        ratio(f"retrain_step_{lo}_speedup_vs_fp32", t("vnasnet_train_fast", FP32), t("vnasnet_train_fast", lo), 2.5)
        ratio(f"inference_{lo}_speedup_vs_fp32", _get(inf, "vnasnet_fast", FP32, "time_s_min"),
              _get(inf, "vnasnet_fast", lo, "time_s_min"), 2.5)
        ratio(f"matmul_{lo}_over_fp32", rates.get(lo), rates[FP32], digits=2)

    for p in precs:  # issue 6's checks, per precision
        naive, fast = t("vnas_mixed_naive", p), t("vnas_mixed_fast", p)
        ratio(f"{p}_mixed_step_speedup_vs_naive", naive, fast, 3.0)
        ratio(f"{p}_sampled_step_speedup_vs_naive_mixed", naive, t("vnas_sampled_fast", p))
        ratio(f"{p}_mixed_step_speedup_vs_dints", t("dints", p), fast)
        ck, dn = _get(mem, "vnas_mixed_fast_ckpt", p, "peak_mb"), _get(mem, "vnasnet_train_fast", p, "peak_mb")
        if ck and dn:
            out[f"{p}_supernet_ckpt_peak_over_discrete_train_peak"] = round(ck / dn, 3)
            out[f"{p}_supernet_ckpt_peak_at_most_1.5x_discrete"] = ck / dn <= 1.5
    return out


# ------------------------------------------------------------------------------------------------ main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small run (init_filters 8, fewer repeats)")
    p.add_argument("--output", default=None, help="JSON file (default benchmarks/results/search_<device>[_quick].json)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch intra-op threads")
    p.add_argument("--device", default="auto", help="'auto' (CUDA if available), 'cpu' or 'cuda'")
    p.add_argument("--precisions", default=None,
                   help="comma-separated precisions, each row runs once per precision (default fp32,bf16; "
                        "fp32,fp16 on a CUDA device without bf16); fp32 alone replaces the former --no-amp")
    p.add_argument("--rows", default=None, help=f"comma-separated step rows (default all of {list(STEP_CONFIGS)}, "
                                                f"plus {list(GPU_EXTRA)} on CUDA)")
    p.add_argument("--init-filters", dest="init_filters", type=int, default=None)
    p.add_argument("--patch", type=int, nargs=3, default=None)
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--rounds", type=int, default=None, help="timed steps per row and precision")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps per row and precision")
    p.add_argument("--volume", type=int, nargs=3, default=None, help="sliding-window inference volume")
    p.add_argument("--roi", type=int, nargs=3, default=None, help="sliding-window inference window")
    p.add_argument("--full-resolution-channels", dest="full_resolution_channels", type=int, default=None,
                   help="the inference rows' VNASNet with a full-resolution stage of this width (the hippocampus "
                        "benchmark's network: 16; default 0, the bundles' network)")
    p.add_argument("--system-malloc", dest="system_malloc", action="store_true",
                   help="leave glibc's allocator as it is; by default the run keeps freed memory for reuse as the "
                        "training engines do (vnas_monai.engine.keep_freed_memory)")
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--skip-inference", action="store_true")
    p.add_argument("--_child-memory", dest="child_memory", default=None, help=argparse.SUPPRESS)
    p.add_argument("--_precision", dest="child_precision", default=FP32, help=argparse.SUPPRESS)
    p.add_argument("--_dints", dest="dints", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    s = settings(args, device.type == "cuda")
    # as the training engines: on the CPU, large freed blocks stay in the process for the next step
    host_memory = ("CPU memory: the system allocator as it is (--system-malloc)" if args.system_malloc else
                   keep_freed_memory() if device.type == "cpu" else "")
    if args.child_memory:
        mem = child_memory(args.child_memory, args.child_precision, s, device, json.loads(args.dints))
        print(json.dumps(mem), flush=True)
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
    policies = {p: resolve_precision(p, device) for p in s["precisions"]}
    result: dict[str, Any] = dict(
        device=dict(type=device.type, name=name, threads=args.threads, torch=torch.__version__,
                    cpu_capability=torch.backends.cpu.get_cpu_capability(), cpu_count=os.cpu_count(),
                    cpu_bf16_matmul=list(cpu_bf16_matmul()), host_memory=host_memory),
        settings=s, precisions={p: pol.describe() for p, pol in policies.items()},
        load_before=loadavg(), started=time.strftime("%Y-%m-%d %H:%M:%S"),
    )
    t_start = time.time()
    print(f"device {name}, {args.threads} threads, {result['device']['cpu_bf16_matmul'][1]}, settings {s}; "
          f"{host_memory}", flush=True)
    result["matmul_gflops"] = matmul_rates(device, args.quick, s["precisions"])
    print("matmul: " + ", ".join(f"{p} {v:.1f} GFLOP/s" for p, v in result["matmul_gflops"].items()), flush=True)

    rows = row_names(args, device.type == "cuda")
    configs = {r: ALL_CONFIGS[r] for r in rows}
    dints = None
    if "dints" in configs:
        target = param_count(build_supernet(dict(fast=True), s["init_filters"]), ("alpha", "beta"))
        dints = dints_spec(target, s["patch"])
        result["dints_spec"] = dints
        print(f"DiNTS: {dints}", flush=True)

    steppers = {key(r, p): Stepper(r, configs[r], s, device, dints, pol) for r in rows for p, pol in policies.items()}
    print(f"timing {len(steppers)} steppers ({len(rows)} rows x {len(policies)} precisions): {s['warmup']} warm-up + "
          f"{s['rounds']} interleaved timed steps each", flush=True)
    timed = time_steps(steppers, s["warmup"], s["rounds"], device)
    steps: dict[str, dict[str, dict]] = {r: {} for r in rows}
    for r in rows:
        flops = steppers[key(r, s["precisions"][0])].conv_flops()  # the same network in every precision
        for p in policies:
            st, row = steppers[key(r, p)], timed[key(r, p)]
            gflops = flops / 1e9 / row["step_s_min"]
            row.update(params=st.params, conv_gflop_per_step=flops / 1e9, conv_gflops=gflops,
                       pct_of_matmul={d: 100 * gflops / v for d, v in result["matmul_gflops"].items()},
                       precision=p,
                       config={**configs[r], **({} if configs[r]["model"] == "dints" else vnas_kwargs(configs[r]))})
            steps[r][p] = row
        base = _get(steps, r, FP32, "step_s_min")
        for row in steps[r].values():
            row["speedup_vs_fp32"] = base / row["step_s_min"] if base else None
    result["steps"] = steps
    del steppers

    result["memory"] = {}
    if not args.skip_memory:
        for r in rows:
            result["memory"][r] = {}
            for p in policies:
                print(f"peak memory of {r} in {p} (fresh process) ...", flush=True)
                result["memory"][r][p] = run_child_memory(r, p, args, device, dints)
    result["inference"] = {} if args.skip_inference else inference_rows(s, device, s["infer_repeats"])
    result["checks"] = checks(result)
    if device.type == "cuda" and all(r in steps for r in ("vnas_mixed_fast", "vnas_sampled_fast", "vnas_mixed_naive")):
        hours = {r: {p: v["step_s_min"] * SEARCH_ITERATIONS / 3600 for p, v in steps[r].items()}
                 for r in ("vnas_mixed_fast", "vnas_sampled_fast", "vnas_mixed_naive")}
        result["projection"] = dict(
            iterations=SEARCH_ITERATIONS, gpu_hours=hours["vnas_mixed_fast"],
            gpu_hours_sampled=hours["vnas_sampled_fast"], gpu_hours_naive=hours["vnas_mixed_naive"],
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
