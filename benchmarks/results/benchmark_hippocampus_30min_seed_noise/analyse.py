"""How much of the spread among random V-NAS architectures is the architecture, and how much the training seed
(issue 14): six random architectures, each trained twice (training seeds 0 and 1), 30 minutes, fold 0.

    python benchmarks/results/benchmark_hippocampus_30min_seed_noise/analyse.py [--output analysis.json]

Each row's Dice is the mean over the 65 held-out cases of the case's Dice (mean of the two classes), in points.
Figures: the two seeds' ranking of the six architectures (Spearman, exact permutation p over the 720 orders); a
two-way analysis of variance of the 12 row means, architecture x run, without interaction (the run term takes the
offset between the two runs, which trained on different days and took different numbers of steps; F with 5 and 5
degrees of freedom); the variance components (seed-to-seed noise of one training, architecture) and the share of a
single training's variance that the architecture explains (the intraclass correlation, ICC(1)).
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np
from scipy import stats

from vnas_monai.benchmark.paired import read_row
from vnas_monai.evaluation.paired import case_dice

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent
SEED0 = {k: RESULTS / ("benchmark_hippocampus_30min_v2" if k <= 3 else "benchmark_hippocampus_30min_random6")
         / f"vnas_random{k}" for k in range(1, 7)}
SEED1 = {k: HERE / f"vnas_random{k}_s1" for k in range(1, 7)}


def row_mean(folder: Path) -> float:
    return 100.0 * float(np.mean(list(case_dice(read_row(".", str(folder))).values())))


def spearman_exact(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Spearman's rho and its two-sided exact permutation p (all orders of ``b``)."""
    rho = stats.spearmanr(a, b).statistic
    perms = [stats.spearmanr(a, np.asarray(p)).statistic for p in itertools.permutations(b)]
    return float(rho), float(np.mean(np.abs(perms) >= abs(rho) - 1e-12))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output", help="also write the figures as JSON")
    args = ap.parse_args()
    archs = sorted(SEED0)
    m0 = np.array([row_mean(SEED0[k]) for k in archs])
    m1 = np.array([row_mean(SEED1[k]) for k in archs])
    d = m1 - m0
    avg = (m0 + m1) / 2
    n = len(archs)
    # two-way ANOVA (architecture + run), one training per cell: the residual is the seed-to-seed noise once the
    # runs' common offset is removed
    ms_within = float(np.sum((d - d.mean()) ** 2) / 2 / (n - 1))
    ms_between = float(2 * np.var(avg, ddof=1))
    f = ms_between / ms_within
    p_f = float(stats.f.sf(f, n - 1, n - 1))
    var_arch = max(0.0, (ms_between - ms_within) / 2)
    icc = var_arch / (var_arch + ms_within)
    rho, p_rho = spearman_exact(m0, m1)
    print("| architecture | seed 0 | seed 1 | seed 1 - seed 0 | mean |")
    print("|---|---|---|---|---|")
    for k, a, b, x, y in zip(archs, m0, m1, d, avg):
        print(f"| `vnas_random{k}` | {a:.2f} | {b:.2f} | {x:+.2f} | {y:.2f} |")
    print(f"| mean | {m0.mean():.2f} | {m1.mean():.2f} | {d.mean():+.2f} | {avg.mean():.2f} |")
    print(f"\nSpearman, seed 0 vs seed 1 ranking of the {n} architectures: {rho:.2f} (exact p {p_rho:.2f})")
    print(f"offset of the seed-1 run: {d.mean():+.2f} points")
    print(f"one training's seed-to-seed standard deviation: {np.sqrt(ms_within):.3f} points")
    print(f"architecture standard deviation (estimated): {np.sqrt(var_arch):.3f} points")
    print(f"ANOVA on the row means: F({n - 1}, {n - 1}) = {f:.2f}, p {p_f:.2f}; ICC(1) = {icc:.2f}")
    if args.output:
        out = dict(architectures=[f"vnas_random{k}" for k in archs], seed0=m0.round(3).tolist(),
                   seed1=m1.round(3).tolist(), run_offset=float(d.mean()),
                   spearman=rho, spearman_p=p_rho, seed_sd=float(np.sqrt(ms_within)),
                   architecture_sd=float(np.sqrt(var_arch)), anova_f=f, anova_p=p_f, icc1=icc)
        Path(args.output).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
