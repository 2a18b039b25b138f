"""Do V-NAS searches retrain to better networks than random architectures of its space (issue 14)? The populations:
five searches (training and search seeds 0-4) against six random architectures, hippocampus fold 0, 30 minutes.

    python benchmarks/results/benchmark_hippocampus_30min_search_seeds/compare.py [--output comparison.json]

Each row's Dice is the mean over the 65 held-out cases of the case's Dice (mean of the two classes), in points: from
the row's per-case metrics where they were kept, else from its summary (the mean of its class means, the same figure
when no case is undefined). Figures: each population's mean and standard deviation, the difference of the means with
its Welch standard error, the exact permutation p of that difference over the 462 splits of the 11 rows, and the
Mann-Whitney U with its exact p. The paired per-case comparisons of single rows are in ``paired.txt``.
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
SEARCHES = {
    "vnas (seed 0)": RESULTS / "benchmark_hippocampus_30min_v3" / "vnas_sf05_scratch",
    "vnas_s1": RESULTS / "benchmark_hippocampus_30min_v3" / "vnas_sf05_scratch_s1",
    "vnas_s2": RESULTS / "benchmark_hippocampus_30min_random6" / "vnas_s2",
    "vnas_s3": HERE / "vnas_s3",
    "vnas_s4": HERE / "vnas_s4",
}
RANDOM = {
    f"vnas_random{k}": RESULTS / ("benchmark_hippocampus_30min_v2" if k <= 3 else "benchmark_hippocampus_30min_random6")
    / f"vnas_random{k}"
    for k in range(1, 7)
}


def row_mean(folder: Path) -> float:
    """Mean Dice of a row in points (per-case metrics if kept, else the summary's class means)."""
    if (folder / "metrics.csv").is_file() or (folder / "result.json").is_file():
        return 100.0 * float(np.mean(list(case_dice(read_row(".", str(folder))).values())))
    classes = json.loads((folder / "summary.json").read_text())["classes"]
    return 100.0 * float(np.mean([c["dice"]["mean"] for c in classes.values()]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output", help="also write the figures as JSON")
    args = ap.parse_args()
    s = {k: row_mean(v) for k, v in SEARCHES.items()}
    r = {k: row_mean(v) for k, v in RANDOM.items()}
    a, b = np.array(list(s.values())), np.array(list(r.values()))
    diff = float(a.mean() - b.mean())
    se = float(np.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size))
    both = np.concatenate([a, b])
    splits = [np.array(idx) for idx in itertools.combinations(range(both.size), a.size)]
    null = np.array([both[i].mean() - np.delete(both, i).mean() for i in splits])
    p_perm = float(np.mean(np.abs(null) >= abs(diff) - 1e-12))
    mw = stats.mannwhitneyu(a, b, alternative="two-sided", method="exact")
    out = {
        "searches": s, "random": r,
        "search_mean": float(a.mean()), "search_sd": float(a.std(ddof=1)),
        "random_mean": float(b.mean()), "random_sd": float(b.std(ddof=1)),
        "difference": diff, "welch_se": se, "permutation_p": p_perm, "splits": len(splits),
        "mann_whitney_u": float(mw.statistic), "mann_whitney_p": float(mw.pvalue),
    }
    for k, v in {**s, **r}.items():
        print(f"{k:16s} {v:6.2f}")
    print(f"searches {out['search_mean']:.2f} (sd {out['search_sd']:.2f}, n {a.size}); random {out['random_mean']:.2f} "
          f"(sd {out['random_sd']:.2f}, n {b.size}); difference {diff:+.2f} +- {se:.2f} (Welch se); "
          f"permutation p {p_perm:.2f} over {len(splits)} splits; Mann-Whitney U {mw.statistic:.1f}, p {mw.pvalue:.2f}")
    if args.output:
        Path(args.output).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
