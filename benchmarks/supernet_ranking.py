"""Does a trained supernet rank V-NAS architectures as their standalone retrainings do? (issue 14)

Each benchmark row of ``--rows`` (a ``result.json`` whose ``meta.architecture`` holds its architecture) is cut out
of the supernet (``VNASNet.from_supernet``), its batch-norm statistics are recomputed on S_train patches (shared
weights saw other paths' statistics), and it is scored by mean Dice on S_val. The script prints that score beside
the row's held-out Dice and their Spearman correlation::

    OMP_NUM_THREADS=1 python benchmarks/supernet_ranking.py runs/thick15 --dataset_dir runs/data/hippocampus_thick3 \\
        --supernet runs/thick15/vnas_sf40/supernet.pt --rows vnas,vnas_s1,vnas_random1,vnas_random3
    OMP_NUM_THREADS=1 python benchmarks/supernet_ranking.py runs/thick15 --dataset_dir ... \\
        --train_minutes 10 --search_mode sampled --out runs/thick15/spos        # trains the supernet first

``--standalone_minutes M`` scores a cheaper proxy without weight sharing instead: each architecture trained alone for
``M`` minutes on S_train only (the benchmark's retraining recipe), then scored on S_val.

Rows kept under ``benchmarks/results`` (``metrics.csv`` only) are read with ``--rows_dir`` and their architectures
given in ``--architectures`` (JSON ``{row: "1 0 0, ... | 0 1 0 0 0"}``); ``work_dir`` then needs only the run's
``plan.json`` and the fold split ``folds.json`` (written there from ``--dataset_dir`` with seed 0 when absent).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch


def main(argv: Sequence[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("work_dir", help="a benchmark work_dir (plan.json, folds.json, rows)")
    ap.add_argument("--dataset_dir", required=True)
    ap.add_argument("--rows", default="", help="comma-separated rows of work_dir (default: every row with an arch)")
    ap.add_argument("--rows_dir", help="where the rows are, if not in work_dir (e.g. a run under benchmarks/results)")
    ap.add_argument("--architectures", help="JSON {row: architecture in the paper's notation} for rows whose folder "
                    "keeps no result.json (rows kept as metrics.csv)")
    source_arg = ap.add_mutually_exclusive_group()
    source_arg.add_argument("--supernet", help="supernet checkpoint; without it one is trained (--train_minutes)")
    ap.add_argument("--train_minutes", type=float, default=10.0)
    ap.add_argument("--search_mode", default="sampled", choices=("sampled", "mixed"))
    ap.add_argument("--arch_steps", action="store_true", help="let the architecture learn (default: uniform paths)")
    source_arg.add_argument("--standalone_minutes", type=float,
                            help="no supernet: train each architecture alone this long on S_train, score on S_val")
    ap.add_argument("--bn_batches", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="folder for the trained supernet and ranking.json (default: work_dir/ranking)")
    args = ap.parse_args(argv)

    from vnas_monai.benchmark.oneshot import score_architectures
    from vnas_monai.benchmark.paired import read_row
    from vnas_monai.benchmark.vnas import VNAS_NETWORK, _supernet_kwargs, search_architecture
    from vnas_monai.data import fold_datalists
    from vnas_monai.evaluation.paired import case_dice
    from vnas_monai.spaces.vnas import Architecture, VNASSupernet

    work = Path(args.work_dir)
    out = Path(args.out or work / "ranking")
    out.mkdir(parents=True, exist_ok=True)
    plan = json.loads((work / "plan.json").read_text())
    splits = fold_datalists(args.dataset_dir, datalist_file=work / "folds.json")
    network = dict(VNAS_NETWORK, search_mode=args.search_mode)
    supernet = None
    if args.standalone_minutes is not None:  # 0 too: a standalone ranking was asked for, not a supernet
        source: object = {"standalone_minutes": args.standalone_minutes, "trained_on": "S_train"}
    elif args.supernet:
        supernet = VNASSupernet(**_supernet_kwargs(plan, VNAS_NETWORK))
        supernet.load_state_dict(torch.load(args.supernet, weights_only=True))
        source = args.supernet
    else:
        _, stats = search_architecture(plan, splits, args.train_minutes * 60, out, seed=args.seed, network=network,
                                       warmup_fraction=0.3 if args.arch_steps else 1.0,
                                       entropy_weight=0.5 if args.arch_steps else 0.0)
        supernet = VNASSupernet(**_supernet_kwargs(plan, network))
        supernet.load_state_dict(torch.load(stats["supernet_checkpoint"], weights_only=True))
        source = stats
    rows_dir = Path(args.rows_dir or work)
    given = json.loads(Path(args.architectures).read_text()) if args.architectures else {}
    names = [r for r in args.rows.split(",") if r] or sorted(given) or sorted(
        p.parent.name for p in rows_dir.glob("*/result.json") if "architecture" in json.loads(p.read_text())["meta"])
    rows = {n: read_row(rows_dir, n) for n in names}
    archs = {n: given[n] if n in given else r.get("meta", {}).get("architecture") for n, r in rows.items()}
    missing = [n for n, a in archs.items() if not a]
    if missing:
        raise SystemExit(f"no architecture for rows {missing}: their folders keep no result.json with "
                         f"meta.architecture; pass them in --architectures.")
    archs = {n: Architecture.from_paper(*a.split("|")) for n, a in archs.items() if a and a != "Mix"}
    held_out = {n: float(np.nanmean(list(case_dice(rows[n]).values()))) for n in archs}
    if supernet is None:
        scores = standalone_scores(archs, plan, splits, args.standalone_minutes * 60, out, args.seed)
    else:
        scores = score_architectures(supernet, list(archs.values()), plan, splits, bn_batches=args.bn_batches,
                                     seed=args.seed)
    kind = "supernet" if supernet is not None else "standalone"
    table = sorted(((n, scores[i], held_out[n]) for i, n in enumerate(archs)), key=lambda t: -t[1])
    print(f"{'row':20s} {kind + ' val Dice':>18s} {'held-out Dice':>14s}  architecture")
    for n, s, h in table:
        print(f"{n:20s} {100 * s:18.2f} {100 * h:14.2f}  {' | '.join(archs[n].to_paper())}")
    from scipy.stats import spearmanr

    rho = spearmanr([t[1] for t in table], [t[2] for t in table])
    print(f"Spearman rho {rho.statistic:.2f} (p {rho.pvalue:.2f}) over {len(table)} architectures")
    ranked = [{"row": n, f"{kind}_val_dice": s, "held_out_dice": h, "architecture": " | ".join(archs[n].to_paper())}
              for n, s, h in table]
    result = {kind: source, "rows": ranked, "spearman": float(rho.statistic), "p": float(rho.pvalue)}
    (out / "ranking.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    return result


def standalone_scores(archs: dict, plan: dict, splits: dict, budget_s: float, out: Path, seed: int) -> list[float]:
    """S_val mean Dice of each architecture trained alone for ``budget_s`` on S_train (not S_train + S_val, as the
    benchmark's rows are), with the benchmark's retraining recipe."""
    from vnas_monai.baselines.pipeline import eval_dataset
    from vnas_monai.benchmark.oneshot import val_dice
    from vnas_monai.benchmark.vnas import train_architecture
    from vnas_monai.engine import resolve_precision

    train_only = dict(splits, trainval=splits["train"])
    val = eval_dataset(splits["val"], plan)
    precision = resolve_precision("auto", "cpu")
    scores = []
    for name, arch in archs.items():
        trained = train_architecture(plan, train_only, budget_s, out / name, arch, name=name, seed=seed)
        scores.append(val_dice(trained.model.eval(), val, trained.roi_size, len(plan["class_names"]), precision))
        print(f"{name}: {trained.meta['steps']} steps, S_val Dice {100 * scores[-1]:.2f}", flush=True)
    return scores


if __name__ == "__main__":
    main()
