"""Retrain a searched architecture for the whole budget, as the random and Mix rows are trained (issue 14: does the
search find a better architecture than random ones, at equal training?).

    OMP_NUM_THREADS=1 python benchmarks/retrain_searched.py runs/bench/vnas/arch.json 30 runs/bench [dataset_dir]

Adds the row ``vnas_searched_retrained`` to the benchmark folder (its folds.json and plan.json are reused).
"""

import sys
from pathlib import Path

from vnas_monai.benchmark import benchmark
from vnas_monai.benchmark.registry import register_method
from vnas_monai.benchmark.vnas import train_architecture

NAME = "vnas_searched_retrained"


def main(arch_json: str, budget_min: float, work_dir: str, dataset_dir: str) -> None:
    def method(plan, splits, budget_s, work, seed=0, max_steps=None):
        return train_architecture(plan, splits, budget_s, work, arch_json, NAME, seed, max_steps)

    register_method(NAME, method)
    print(benchmark(dataset_dir=dataset_dir, budget_min=budget_min, methods=NAME, work_dir=work_dir))


if __name__ == "__main__":
    default_data = str(Path(__file__).resolve().parents[2] / "shared" / "data" / "msd_hippocampus")
    main(sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else default_data)
