"""How noisy is one MB-NAS trial? The U-Net (or ResU-Net) of the MB-NAS space trained with the trial's recipe
(:class:`vnas_monai.spaces.mbnas.trial.SliceTrial`) for several seeds, validated after every epoch; prints one JSON
line per seed (the per-epoch validation Dice and the score, the mean of the last 20 % epochs) and, at the end, the
score's mean and spread over the seeds.

The comparison of ``benchmarks/results/mbnas_hippocampus/`` uses its settings (first 100 cases, outer fold 0 of 5,
inner fold 0 of 5, 48 x 64 slices, batch 32, 8 channels):

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/mbnas_trial_noise.py --dataset_dir ../shared/data/msd_hippocampus \
        --learning_rate 0.01 --seeds 0 1 --epochs 24 --steps_per_epoch 16 [--per_sample_dice]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Sequence

import numpy as np


def main(argv: Sequence[str] | None = None) -> dict:
    from vnas_monai.data import fold_datalists
    from vnas_monai.spaces.mbnas.compare import reference_encodings
    from vnas_monai.spaces.mbnas.trial import SliceTrial, last_fraction_mean

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset_dir", required=True)
    p.add_argument("--max_cases", type=int, default=100)
    p.add_argument("--num_classes", type=int, default=3)
    p.add_argument("--patch_size", type=int, nargs=2, default=[48, 64])
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--learning_rate", type=float, default=1e-2)
    p.add_argument("--epochs", type=int, default=24)
    p.add_argument("--steps_per_epoch", type=int, default=16)
    p.add_argument("--init_channels", type=int, default=8)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--network", choices=["U-Net", "ResU-Net"], default="U-Net")
    p.add_argument("--per_sample_dice", action="store_true", help="the Dice per slice, then averaged")
    p.add_argument("--num_nodes", type=int, default=10)
    p.add_argument("--max_downsamplings", type=int, default=4)
    a = p.parse_args(argv)
    splits = fold_datalists(a.dataset_dir, fold=0, num_folds=5, seed=0, max_cases=a.max_cases)
    # max_seconds (never reached) makes the trial validate after every epoch, not only the scored last 20 %
    trial = SliceTrial(splits["trainval"], 1, a.num_classes, 5, 0, 2, tuple(a.patch_size), None, None, a.batch_size,
                       a.learning_rate, epochs=a.epochs, steps_per_epoch=a.steps_per_epoch, max_seconds=1e12,
                       init_channels=a.init_channels, flip_axes=(0,), batch_dice=not a.per_sample_dice,
                       device="cpu", precision="fp32")
    encoding = reference_encodings(a.num_nodes, a.max_downsamplings)[a.network]
    train, val = trial.split(0)
    runs = []
    for seed in a.seeds:
        t0 = time.perf_counter()
        _, info = dataclasses.replace(trial).train(encoding, train, seed, val)
        run = {"seed": seed, "val_dice": [round(v, 4) for v in info["val_dice"]],
               "score": round(last_fraction_mean(info["val_dice"]), 4), "steps": info["steps"],
               "time_s": round(time.perf_counter() - t0, 1)}
        print(json.dumps(run), flush=True)
        runs.append(run)
    scores = [r["score"] for r in runs]
    summary = {"network": a.network, "learning_rate": a.learning_rate, "batch_dice": not a.per_sample_dice,
               "iterations": a.epochs * a.steps_per_epoch, "score_mean": round(float(np.mean(scores)), 4),
               "score_spread": round(float(np.max(scores) - np.min(scores)), 4), "runs": runs}
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}))
    return summary


if __name__ == "__main__":
    main()
