"""V-NAS retraining choices on a fixed architecture (issue 14): recipe (``paper`` SGD / ``adam``) x full-resolution
stage (``full_resolution_channels`` 0 / 8), hippocampus fold 0 of 4, through the benchmark command.

    OMP_NUM_THREADS=1 python benchmarks/vnas_retraining_recipes.py x_paper_8 10 runs/recipes/x_paper_8 [dataset_dir]

The name is ``x_<recipe>_<channels>``; the architecture is the one the quiet 28-minute search of
``benchmarks/results/benchmark_hippocampus_quiet`` derived. Results: ``benchmarks/results/vnas_retraining_recipes/``.
"""

import sys
from pathlib import Path

from vnas_monai.benchmark import benchmark
from vnas_monai.benchmark.registry import register_method
from vnas_monai.benchmark.vnas import VNAS_NETWORK, train_architecture

ARCH = Path(__file__).parent / "results" / "benchmark_hippocampus_quiet" / "vnas_arch.json"


def main(name: str, budget_min: float, work_dir: str, dataset_dir: str) -> None:
    _, recipe, channels = name.split("_")
    network = dict(VNAS_NETWORK, full_resolution_channels=int(channels))

    def method(plan, splits, budget_s, work, seed=0, max_steps=None):
        return train_architecture(plan, splits, budget_s, work, ARCH, name, seed, max_steps, recipe, network)

    register_method(name, method)
    print(benchmark(dataset_dir=dataset_dir, budget_min=budget_min, methods=name, work_dir=work_dir))


if __name__ == "__main__":
    default_data = str(Path(__file__).resolve().parents[2] / "shared" / "data" / "msd_hippocampus")
    main(sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else default_data)
