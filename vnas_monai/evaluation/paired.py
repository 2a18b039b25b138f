"""Paired comparison of two methods on the same held-out cases (issue 14: does the searched network beat the random
ones, and a baseline?).

Two methods evaluated on the same cases differ by much less than their spread over cases (hippocampus: case Dice
std about 3.3 points, differences between methods 0.1-1 point), so a comparison of their means alone says little.
Each case's Dice (mean over the foreground classes) of method A minus that of B, or minus the mean of several Bs
(the mean of three random architectures), gives the mean difference, its standard error over cases, the count of
cases A wins, and the two-sided Wilcoxon signed-rank p-value (scipy).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .tables import case_mean

__all__ = ["case_dice", "paired_difference", "format_paired"]


def case_dice(result: Mapping[str, Any]) -> dict[str, float]:
    """Each case's Dice, the mean over its foreground classes (absent classes, NaN, left out), from a benchmark
    result (``{"records": [{"case", "dice": [...]}, ...]}``)."""
    return {r["case"]: case_mean(r["dice"]) for r in result["records"]}


def paired_difference(a: Mapping[str, Any], b: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per-case Dice of result ``a`` minus the mean per-case Dice of the results ``b`` (one or several), in Dice
    points (x 100).

    Returns:
        ``{"a", "b", "n", "mean_a", "mean_b", "diff", "se", "wins", "losses", "wilcoxon_p"}``; ``a`` and ``b`` are
        the method names, ``se`` the standard error of the mean difference over the ``n`` cases.

    Raises:
        ValueError: the results do not hold the same cases (named), or no case has a Dice in all of them.
    """
    from scipy.stats import wilcoxon

    if not b:
        raise ValueError("paired_difference needs at least one result to compare against.")
    da, dbs = case_dice(a), [case_dice(r) for r in b]
    for r, d in zip(b, dbs):
        if set(d) != set(da):
            only = sorted(set(da) ^ set(d))[:5]
            raise ValueError(f"{a['method']} and {r['method']} were evaluated on different cases (e.g. {only}); "
                             "compare results of one benchmark work_dir (same fold).")
    cases = [c for c in sorted(da) if np.isfinite([da[c], *(d[c] for d in dbs)]).all()]
    if not cases:
        raise ValueError(f"no case has a Dice in {a['method']} and in every result it is compared with.")
    xa = 100 * np.array([da[c] for c in cases])
    xb = 100 * np.array([np.mean([d[c] for d in dbs]) for c in cases])
    diff = xa - xb
    n = len(cases)
    p = float(wilcoxon(diff).pvalue) if n > 1 and np.any(diff != 0) else 1.0
    return {
        "a": a["method"], "b": [r["method"] for r in b], "n": n, "mean_a": float(xa.mean()), "mean_b": float(xb.mean()),
        "diff": float(diff.mean()), "se": float(diff.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan"),
        "wins": int((diff > 0).sum()), "losses": int((diff < 0).sum()), "wilcoxon_p": p,
    }


def format_paired(d: Mapping[str, Any]) -> str:
    """One line: ``A - mean(B...): +0.14 ± 0.13 Dice points (n 65, wins 36 / losses 29, Wilcoxon p 0.31)``."""
    b = d["b"][0] if len(d["b"]) == 1 else f"mean({', '.join(d['b'])})"
    return (f"{d['a']} ({d['mean_a']:.2f}) - {b} ({d['mean_b']:.2f}): {d['diff']:+.2f} ± {d['se']:.2f} Dice points "
            f"(n {d['n']}, wins {d['wins']} / losses {d['losses']}, Wilcoxon p {d['wilcoxon_p']:.3g})")
