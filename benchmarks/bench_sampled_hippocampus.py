#!/usr/bin/env python
"""Epoch time of the paper's mixed search against the sampled search, on real data (MSD Task04 hippocampus).

    python benchmarks/bench_sampled_hippocampus.py [--quick] [--output benchmarks/results/sampled_hippocampus_cpu.json]

Both modes run the same V-NAS search (paper Alg. 1, first order: an SGD weight step on an S_train batch, then an Adam
architecture step on an S_val batch, after a weight-only warm-up epoch) with ``VNASSearchTrainer`` (a plain loop
doing the same two steps if the engine is not importable), on the same cases, the same patches (MONAI
``RandCropByPosNegLabeld`` with a fixed seed), the same initial weights and the same number of iterations per epoch;
only ``VNASSupernet(search_mode=...)`` differs:

- ``mixed``: every candidate of every cell runs, weighted by softmax(alpha/beta) (the paper);
- ``sampled``: one candidate per cell per step, drawn by straight-through Gumbel-softmax (``tau`` 1).

It prints and writes the time of every epoch, the mean time of the epochs with architecture steps, their ratio,
and the architecture each mode derives (argmax per cell) with its probabilities. The data are read from
``../shared/data/msd_hippocampus`` relative to the repository (or ``--data``); without them the script says so and
exits 0. A handful of epochs on 32x32x32 patches measures cost; it is far too short for a meaningful architecture.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "msd_hippocampus"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(DEFAULT_DATA), help="MSD hippocampus folder (with dataset.json)")
    p.add_argument("--output", default=None, help="JSON (default benchmarks/results/sampled_hippocampus_cpu.json)")
    p.add_argument("--quick", action="store_true", help="fewer cases, iterations and epochs")
    p.add_argument("--cases", type=int, default=None, help="cases used (2/3 S_train, 1/3 S_val)")
    p.add_argument("--iterations", type=int, default=None, help="iterations per epoch")
    p.add_argument("--epochs", type=int, default=None, help="epochs, the first one weight-only")
    p.add_argument("--init-filters", dest="init_filters", type=int, default=8)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--patch", type=int, nargs=3, default=[32, 32, 32])
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--modes", nargs="+", default=["mixed", "sampled"], choices=["mixed", "sampled"])
    p.add_argument("--loop", choices=["auto", "trainer", "plain"], default="auto",
                   help="VNASSearchTrainer (auto: when importable) or the equivalent plain loop")
    return p.parse_args(argv)


def make_loaders(cases: list[dict], patch: list[int], batch: int, seed: int):
    from monai.data import CacheDataset, DataLoader
    from monai.transforms import (
        Compose,
        EnsureChannelFirstd,
        EnsureTyped,
        FgBgToIndicesd,
        LoadImaged,
        NormalizeIntensityd,
        RandCropByPosNegLabeld,
        SpatialPadd,
    )

    keys = ["image", "label"]
    transform = Compose([
        LoadImaged(keys, image_only=True),
        EnsureChannelFirstd(keys),
        NormalizeIntensityd("image", nonzero=True),
        SpatialPadd(keys, spatial_size=patch),  # volumes are about 35x50x35: pad any axis shorter than the patch
        # foreground/background voxel lists computed once and cached (MONAI's usual speed-up of the crop below)
        FgBgToIndicesd("label", fg_postfix="_fg", bg_postfix="_bg"),
        RandCropByPosNegLabeld(keys, "label", spatial_size=patch, pos=1, neg=1, num_samples=1,
                               fg_indices_key="label_fg", bg_indices_key="label_bg"),
        # plain tensors into the network: MetaTensor bookkeeping costs about as much per op as a small conv
        EnsureTyped(keys, dtype=[torch.float32, torch.long], track_meta=False),
    ])
    n_val = max(1, len(cases) // 3)  # S_train : S_val = 2 : 1 (paper)
    s_train, s_val = cases[n_val:], cases[:n_val]
    loaders = []
    for i, part in enumerate((s_train, s_val)):
        # copy_cache=False: the random crop reads the cached arrays and writes new ones (no per-item deep copy)
        ds = CacheDataset(part, transform, progress=False, num_workers=0, copy_cache=False)
        # MONAI's DataLoader seeds the random crops from this generator (num_workers=0): same patches in every mode
        g = torch.Generator().manual_seed(seed + i)
        loaders.append(DataLoader(ds, batch_size=batch, shuffle=True, num_workers=0, generator=g, drop_last=True))
    return loaders, len(s_train), len(s_val)


def ce_loss(pred: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(pred, label[:, 0].long())


def run_mode(mode: str, args: argparse.Namespace, cases: list[dict], state: dict, loop: str) -> dict[str, Any]:
    from monai.utils import set_determinism

    from vnas_monai.spaces.vnas import VNASSupernet

    set_determinism(seed=0)
    (train_loader, val_loader), n_train, n_val = make_loaders(cases, args.patch, args.batch, seed=0)
    net = VNASSupernet(3, 1, 3, args.init_filters, search_mode=mode)
    net.load_state_dict(state)
    wopt = torch.optim.SGD(net.weight_parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    aopt = torch.optim.Adam(net.arch_parameters(), lr=3e-4, weight_decay=1e-3)
    epochs: list[dict[str, Any]] = []

    def start_epoch() -> None:
        epochs.append(dict(t0=time.perf_counter(), c0=time.process_time()))

    def end_epoch(arch: bool) -> None:
        e = epochs[-1]
        e.update(wall_s=time.perf_counter() - e.pop("t0"), cpu_s=time.process_time() - e.pop("c0"), arch_steps=arch)
        print(f"  {mode}: epoch {len(epochs)} {e['wall_s']:.1f} s (cpu {e['cpu_s']:.1f} s)"
              f"{' with architecture steps' if arch else ' (weights only)'}", flush=True)

    if loop == "trainer":
        from ignite.engine import Events

        from vnas_monai.engine import VNASSearchTrainer

        trainer = VNASSearchTrainer(
            device="cpu", max_epochs=args.epochs, train_data_loader=train_loader, network=net, optimizer=wopt,
            loss_function=ce_loss, arch_data_loader=val_loader, arch_optimizer=aopt, arch_warmup_epochs=1,
            epoch_length=args.iterations, decollate=False,
        )
        trainer.add_event_handler(Events.EPOCH_STARTED, lambda e: start_epoch())
        trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: end_epoch(e.arch_step_enabled()))
        trainer.run()
        arch_steps = trainer.state.arch_iteration
    else:
        arch_steps = 0
        train_it, val_it = _cycle(train_loader), _cycle(val_loader)
        for epoch in range(1, args.epochs + 1):
            start_epoch()
            for _ in range(args.iterations):
                b = next(train_it)
                net.train()
                wopt.zero_grad()
                ce_loss(net(b["image"]), b["label"]).backward()
                for p in net.arch_parameters():
                    p.grad = None
                wopt.step()
                if epoch > 1:
                    v = next(val_it)
                    aopt.zero_grad()
                    grads = torch.autograd.grad(ce_loss(net(v["image"]), v["label"]), net.arch_parameters())
                    for p, g in zip(net.arch_parameters(), grads):
                        p.grad = g
                    aopt.step()
                    arch_steps += 1
            end_epoch(epoch > 1)
    arch = net.derive()
    enc, dec = arch.to_paper()
    probs = net.arch_probabilities()
    searched = [e for e in epochs if e["arch_steps"]]
    return dict(
        mode=mode, epochs=epochs, arch_steps=arch_steps, s_train_cases=n_train, s_val_cases=n_val,
        mean_search_epoch_s=statistics.mean(e["wall_s"] for e in searched) if searched else None,
        median_search_epoch_s=statistics.median(e["wall_s"] for e in searched) if searched else None,
        min_search_epoch_s=min(e["wall_s"] for e in searched) if searched else None,
        mean_search_epoch_cpu_s=statistics.mean(e["cpu_s"] for e in searched) if searched else None,
        architecture=dict(encoder=enc, decoder=dec, codes=arch.codes),
        probabilities={k: [[round(v, 5) for v in row] for row in p.tolist()] for k, p in probs.items()},
        max_probability_shift=float(max((p - 1 / 3).abs().max() for p in probs.values())),
    )


def _cycle(loader):
    while True:
        yield from loader


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    data = Path(args.data)
    if not (data / "dataset.json").is_file():
        print(f"SKIPPED: MSD hippocampus data not found at {data} (pass --data); nothing measured.")
        return None
    args.cases = args.cases or (12 if args.quick else 36)
    args.iterations = args.iterations or (5 if args.quick else 20)
    args.epochs = args.epochs or (3 if args.quick else 4)
    if args.epochs < 2:
        raise SystemExit("--epochs must be >= 2: the first epoch is weight-only (architecture warm-up).")
    from vnas_monai.data.datalist import load_datalist
    from vnas_monai.spaces.vnas import VNASSupernet

    cases = load_datalist(data, "msd")[: args.cases]
    loop = args.loop
    if loop == "auto":
        try:
            from vnas_monai.engine import VNASSearchTrainer  # noqa: F401

            loop = "trainer"
        except ImportError:
            loop = "plain"
    torch.manual_seed(0)
    state = VNASSupernet(3, 1, 3, args.init_filters).state_dict()
    print(f"{len(cases)} cases, patch {args.patch}, batch {args.batch}, init_filters {args.init_filters}, "
          f"{args.iterations} iterations x {args.epochs} epochs (epoch 1 weight-only), {args.threads} threads, "
          f"loop: {loop}", flush=True)
    results = {m: run_mode(m, args, cases, state, loop) for m in args.modes}
    out: dict[str, Any] = dict(
        settings=dict(data=str(data), cases=len(cases), patch=args.patch, batch=args.batch,
                      init_filters=args.init_filters, iterations_per_epoch=args.iterations, epochs=args.epochs,
                      arch_warmup_epochs=1, threads=args.threads, loop=loop, torch=torch.__version__,
                      conv_impl="auto", memory_format="auto"),
        modes=results,
    )
    print()
    print(f"{'mode':8s} {'epoch times (s)':>30s} {'search epoch s: mean':>21s} {'median':>7s} {'cpu':>6s}"
          f"  architecture (encoder | decoder)")
    for m, r in results.items():
        ep = " ".join(f"{e['wall_s']:.1f}" for e in r["epochs"])
        a = r["architecture"]
        print(f"{m:8s} {ep:>30s} {r['mean_search_epoch_s']:21.2f} {r['median_search_epoch_s']:7.2f} "
              f"{r['mean_search_epoch_cpu_s']:6.1f}  {a['encoder']} | {a['decoder']}"
              f"  (max |p - 1/3| = {r['max_probability_shift']:.4f})")
    if "mixed" in results and "sampled" in results:
        mix, smp = results["mixed"], results["sampled"]
        ratio = smp["mean_search_epoch_s"] / mix["mean_search_epoch_s"]
        out["sampled_over_mixed_epoch_time"] = ratio
        out["sampled_over_mixed_median_epoch_time"] = smp["median_search_epoch_s"] / mix["median_search_epoch_s"]
        out["sampled_over_mixed_epoch_cpu_time"] = smp["mean_search_epoch_cpu_s"] / mix["mean_search_epoch_cpu_s"]
        out["sampled_at_most_half_of_mixed"] = ratio <= 0.5
        print(f"\nsampled / mixed time per search epoch: mean {ratio:.3f}, median "
              f"{out['sampled_over_mixed_median_epoch_time']:.3f}, "
              f"CPU time {out['sampled_over_mixed_epoch_cpu_time']:.3f}"
              f"; at most half: {ratio <= 0.5}")
    name = f"sampled_hippocampus_cpu{'_quick' if args.quick else ''}.json"
    dest = Path(args.output or REPO / "benchmarks" / "results" / name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=2))
    print(f"wrote {dest}")
    return out


if __name__ == "__main__":
    main()
