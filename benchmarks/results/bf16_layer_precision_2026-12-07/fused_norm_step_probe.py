"""Probe (issue 12, not built): the real bf16 retraining step with every channels-last batch norm (+ ReLU) of the
network computed by one Inductor-compiled function per input shape, against PyTorch's native kernels.

    OMP_NUM_THREADS=2 python benchmarks/results/bf16_layer_precision_2026-12-07/fused_norm_step_probe.py \
        --init-filters 64 --patch 96 96 64

The network, batches and step are ``bench_search.py``'s ``vnasnet_train_fast`` row under bf16 (freed memory kept).
The fused forward computes the per-channel mean and variance in float32 and returns bf16 ``relu(xhat * w + b)``; its
backward computes the sums of ``dy`` and ``dy * (x - mean)`` per channel in float32 and
``dx = (dy - mean(dy) - xhat * mean(dy * xhat)) * invstd * w``. Running statistics are updated as
``nn.BatchNorm3d`` does. Each distinct shape compiles once (``torch.compile(dynamic=False)``), so the first fused step
is timed apart; then the native and fused steps alternate, min of ``--rounds``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch._dynamo
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import bench_search  # noqa: E402

from vnas_monai.engine.host_memory import keep_freed_memory  # noqa: E402
from vnas_monai.networks.layers.convs import ConvNormAct  # noqa: E402

DIMS = (0, 2, 3, 4)
FUSE = {"on": False}


def _channel(v: torch.Tensor) -> torch.Tensor:
    return v.view(1, -1, 1, 1, 1)


def norm_act_forward(x, w, b, eps: float, relu: bool):
    xf = x.float()
    var, mean = torch.var_mean(xf, dim=DIMS, correction=0, keepdim=True)
    invstd = torch.rsqrt(var + eps)
    y = (xf - mean) * (invstd * _channel(w)) + _channel(b)
    y = torch.relu(y) if relu else y
    return y.to(x.dtype), mean.flatten(), var.flatten(), invstd


def norm_act_backward(gy, y, x, mean, invstd, w, relu: bool):
    dy = torch.where(y > 0, gy.float(), 0.0) if relu else gy.float()
    xc = x.float() - _channel(mean)
    sdy = dy.sum(DIMS, keepdim=True)
    sdyx = (dy * xc).sum(DIMS, keepdim=True)
    m = x.numel() // x.shape[1]
    dx = (dy - sdy / m - xc * (invstd * invstd) * (sdyx / m)) * (invstd * _channel(w))
    return dx.to(x.dtype), (sdyx * invstd).flatten(), sdy.flatten()


compiled_forward = torch.compile(norm_act_forward, dynamic=False)
compiled_backward = torch.compile(norm_act_backward, dynamic=False)


class FusedNormAct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, b, relu):
        y, mean, var, invstd = compiled_forward(x, w, b, 1e-5, relu)
        ctx.save_for_backward(y, x, mean, invstd, w)
        ctx.relu = relu
        return y, mean, var

    @staticmethod
    def backward(ctx, gy, _gmean, _gvar):
        y, x, mean, invstd, w = ctx.saved_tensors
        dx, dw, db = compiled_backward(gy, y, x, mean, invstd, w, ctx.relu)
        return dx, dw, db, None


def fused(norm: nn.Module, x: torch.Tensor, relu: bool):
    """The fused norm (+ ReLU) where it applies (training, bf16, channels-last), else None."""
    if not (FUSE["on"] and norm.training and isinstance(norm, nn.BatchNorm3d) and x.dtype == torch.bfloat16
            and x.is_contiguous(memory_format=torch.channels_last_3d)):
        return None
    y, mean, var = FusedNormAct.apply(x, norm.weight, norm.bias, relu)
    with torch.no_grad():
        m = x.numel() // x.shape[1]
        norm.running_mean.lerp_(mean, norm.momentum)
        norm.running_var.lerp_(var * m / (m - 1), norm.momentum)
        norm.num_batches_tracked += 1
    return y


def conv_norm_act_forward(self, x):
    relu = isinstance(self.act, nn.ReLU)
    if self.preact:
        y = fused(self.norm, x, relu) if relu else None
        return self.conv(y if y is not None else self.act(self.norm(x)))
    h = self.conv(x)
    y = fused(self.norm, h, relu) if relu or isinstance(self.act, nn.Identity) else None
    return y if y is not None else self.act(self.norm(h))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--init-filters", type=int, default=64)
    ap.add_argument("--patch", type=int, nargs=3, default=[96, 96, 64])
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(keep_freed_memory())
    # one compiled graph per shape: the default limit (8) would fall back to eager for the rest
    torch._dynamo.config.cache_size_limit = 512
    torch._dynamo.config.accumulated_cache_size_limit = 4096
    ConvNormAct.forward = conv_norm_act_forward
    s = dict(init_filters=args.init_filters, batch=args.batch, patch=args.patch)
    row = "vnasnet_train_fast"
    step = bench_search.Stepper(row, bench_search.STEP_CONFIGS[row], s, torch.device("cpu"), None, "bf16")
    for _ in range(2):
        step.step()
    FUSE["on"] = True
    t = time.perf_counter()
    step.step()
    print(f"first fused step (compiles every shape): {time.perf_counter() - t:.1f} s")
    step.step()
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.rounds):
        for on in (False, True):
            FUSE["on"] = on
            t = time.perf_counter()
            step.step()
            times[on].append(time.perf_counter() - t)
    print(f"bf16 retraining step, min of {args.rounds}: native {min(times[False]):.3f} s, "
          f"fused norm-act {min(times[True]):.3f} s")


if __name__ == "__main__":
    main()
