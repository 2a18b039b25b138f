"""One V-NAS row of the benchmark under chosen settings (issue 14): a fixed architecture retrained for the whole
budget, as the random and Mix rows are trained (does the search beat random architectures at equal training?), or
the ``vnas`` method itself (search inside the budget, then retraining) with another search share or retraining start;
in both, another recipe, augmentation or network width. The experiments of ``results/vnas_retraining_recipes/``.

    OMP_NUM_THREADS=1 python benchmarks/vnas_variant.py runs/bench/vnas/arch.json 30 runs/bench
    OMP_NUM_THREADS=1 python benchmarks/vnas_variant.py ARCH 10 runs/recipes --name x_adam_8 --recipe adam \\
        --full_resolution_channels 8
    OMP_NUM_THREADS=1 python benchmarks/vnas_variant.py search 10 runs/recipes --name s_warm --search_fraction 0.2 \\
        --init scratch --augmentation none

Adds the row ``--name`` (default ``vnas_searched_retrained``) to the benchmark folder, reusing its folds and plan.
"""

import argparse
from pathlib import Path

from vnas_monai.benchmark import benchmark
from vnas_monai.benchmark.registry import register_method
from vnas_monai.benchmark.vnas import (
    RECIPES,
    RETRAIN_INIT,
    RETRAIN_INITS,
    SEARCH_FRACTION,
    VNAS_NETWORK,
    train_architecture,
    train_vnas,
)


def main() -> None:
    default_data = str(Path(__file__).resolve().parents[2] / "shared" / "data" / "msd_hippocampus")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("arch", help="an arch.json (or preset) to retrain, or 'search' for the vnas method")
    ap.add_argument("budget_min", type=float)
    ap.add_argument("work_dir")
    ap.add_argument("--dataset_dir", default=default_data)
    ap.add_argument("--name", default="vnas_searched_retrained")
    ap.add_argument("--recipe", default="paper", choices=sorted(RECIPES))
    ap.add_argument("--full_resolution_channels", type=int, default=VNAS_NETWORK["full_resolution_channels"])
    ap.add_argument("--full_resolution_features", action="store_true",
                    help="the full-resolution stage also sees the decoder's last features (a top-level skip)")
    ap.add_argument("--init_filters", type=int, default=VNAS_NETWORK["init_filters"])
    ap.add_argument("--deep_supervision", type=int, default=VNAS_NETWORK.get("deep_supervision", 0),
                    help="auxiliary outputs of the retrained network (nnU-Net's deep supervision; 0: none)")
    ap.add_argument("--augmentation", choices=("recipe", "none", "intensity", "affine", "both"), default="recipe",
                    help="retraining augmentation: the recipe's (intensity and affine), or as given")
    ap.add_argument("--batch_size", type=int, help="cases per retraining batch (default: the plan's)")
    ap.add_argument("--num_samples", type=int, help="patches per case in a retraining batch (default: the plan's)")
    ap.add_argument("--ema_decay", type=float, help="retraining: the decay of the weights' moving average (default: "
                    "the recipe's); 0 turns it off")
    ap.add_argument("--search_fraction", type=float, default=SEARCH_FRACTION, help="with arch 'search'")
    ap.add_argument("--init", default=RETRAIN_INIT, choices=RETRAIN_INITS, help="with arch 'search'")
    ap.add_argument("--train_seed", type=int, help="the method's seed (initialisation, crops, augmentation, search) "
                    "instead of the benchmark's; the fold split stays the same")
    args = ap.parse_args()
    network = dict(VNAS_NETWORK, full_resolution_channels=args.full_resolution_channels, init_filters=args.init_filters,
                   deep_supervision=args.deep_supervision)
    if args.full_resolution_features:
        network["full_resolution_features"] = True
    if args.augmentation != "recipe":
        RECIPES[args.recipe] = dict(RECIPES[args.recipe], intensity=args.augmentation in ("intensity", "both"),
                                    affine=args.augmentation in ("affine", "both"))
    for key in ("batch_size", "num_samples", "ema_decay"):
        if getattr(args, key) is not None:
            RECIPES[args.recipe] = dict(RECIPES[args.recipe], **{key: getattr(args, key) or None})

    def method(plan, splits, budget_s, work, seed=0, max_steps=None):
        seed = seed if args.train_seed is None else args.train_seed
        if args.arch == "search":
            return train_vnas(plan, splits, budget_s, work, seed, max_steps, args.search_fraction, args.recipe,
                              network, init=args.init)
        return train_architecture(plan, splits, budget_s, work, args.arch, args.name, seed, max_steps, args.recipe,
                                  network)

    register_method(args.name, method, overwrite=True)  # e.g. --name vnas_random4: the registered row, by hand
    print(benchmark(dataset_dir=args.dataset_dir, budget_min=args.budget_min, methods=args.name,
                    work_dir=args.work_dir))


if __name__ == "__main__":
    main()
