"""A benchmark method rerun with another training seed (issue 14: run-to-run variance), on the same folds and plan.

The benchmark command's ``--seed`` also draws the fold split; this script keeps the split and changes only the seed
handed to the method (its initialisation, crops, augmentation, shuffling and, for V-NAS, the search)::

    OMP_NUM_THREADS=1 python benchmarks/seed_variant.py segresnet 1 30 runs/b30 \\
        --dataset_dir ../shared/data/msd_hippocampus                               # adds the row segresnet_s1
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from vnas_monai.benchmark import benchmark
from vnas_monai.benchmark.registry import get_method, method_names, register_method


def main(argv: Sequence[str] | None = None) -> str:
    """Parse ``argv``, run the row ``<method>_s<train_seed>``, print and return the benchmark's Markdown table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("method", choices=method_names())
    ap.add_argument("train_seed", type=int)
    ap.add_argument("budget_min", type=float)
    ap.add_argument("work_dir")
    ap.add_argument("--dataset_dir", help="MSD / NIH dataset folder (default: the benchmark's embedded phantoms)")
    args = ap.parse_args(argv)
    base = get_method(args.method)
    name = f"{args.method}_s{args.train_seed}"

    def method(plan, splits, budget_s, work, seed=0, max_steps=None):
        return base(plan, splits, budget_s, work, seed=args.train_seed, max_steps=max_steps)

    register_method(name, method, overwrite=True)
    table = benchmark(dataset_dir=args.dataset_dir, budget_min=args.budget_min, methods=name, work_dir=args.work_dir)
    print(table)
    return table


if __name__ == "__main__":
    main()
