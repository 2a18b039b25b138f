"""Does bf16 cost accuracy? V-NAS search + retraining on the real MSD hippocampus at a fixed iteration count, in one
precision per process; ``--table`` compares the finished runs (issue 12's accuracy check).

Run one process per precision (one thread each, side by side: the iteration counts are fixed, so the load of the
machine changes the times, not the results), then the table:

    OMP_NUM_THREADS=1 python benchmarks/precision_accuracy.py --precision fp32 --work_dir /tmp/prec &
    OMP_NUM_THREADS=1 python benchmarks/precision_accuracy.py --precision bf16 --work_dir /tmp/prec &
    wait; python benchmarks/precision_accuracy.py --table --work_dir /tmp/prec \
        --output benchmarks/results/precision_accuracy

Both runs use the same seed, fold (0 of 4), split, patches and schedules: the search's ``epochs x epoch_length``
iterations (weight + architecture step) and the retraining's, then ``evaluate.json`` on the 65 held-out cases.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "vnas_nih"


def run_precision(args: argparse.Namespace) -> None:
    from vnas_monai.workflows.crossval import run_bundle

    work = Path(args.work_dir) / args.precision
    common = dict(
        dataset_dir=args.dataset_dir,
        work_dir=str(work),
        fold=0,
        num_folds=4,
        num_classes=3,
        intensity_clip=None,
        init_filters=args.init_filters,
        num_workers=0,
        device="cpu",
        precision=args.precision,
        seed=0,
    )
    train = dict(roi_size=[32, 32, 32], num_samples=4, batch_size=2, flip_axes=[0])
    timings = {}
    start = time.perf_counter()
    run_bundle(BUNDLE / "search.json", "search", **common, **train, max_epochs=args.search_epochs,
               arch_warmup_epochs=args.warmup_epochs, epoch_length=args.epoch_length)
    timings["search_s"] = time.perf_counter() - start
    arch = work / "fold0" / "search" / "arch.json"
    start = time.perf_counter()
    run_bundle(BUNDLE / "train.json", "run", **common, **train, max_epochs=args.train_epochs,
               epoch_length=args.epoch_length, val_interval=10_000, loss="dice_ce", arch=str(arch),
               class_names="auto")
    timings["train_s"] = time.perf_counter() - start
    start = time.perf_counter()
    run_bundle(BUNDLE / "evaluate.json", "run", **common, arch=str(arch), infer_roi_size=[64, 64, 64],
               class_names="auto")
    timings["evaluate_s"] = time.perf_counter() - start
    summary = json.loads((work / "fold0" / "eval" / "summary.json").read_text())
    result = {
        "precision": args.precision,
        "iterations": {
            "search": args.search_epochs * args.epoch_length,
            "train": args.train_epochs * args.epoch_length,
        },
        "architecture": json.loads(arch.read_text())["paper"],
        "dice": {c: m["dice"] for c, m in summary["classes"].items()},
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
    }
    (work / "result.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


def table(args: argparse.Namespace) -> None:
    rows = [json.loads(p.read_text()) for p in sorted(Path(args.work_dir).glob("*/result.json"))]
    if not rows:
        raise SystemExit(f"no finished run under {args.work_dir} (expected <precision>/result.json)")
    lines = [
        f"MSD hippocampus, fold 0 of 4 (65 held-out cases), V-NAS init_filters {args.init_filters}: search "
        f"{rows[0]['iterations']['search']} iterations, retraining {rows[0]['iterations']['train']} iterations",
        "",
        "| precision | class | Dice mean ± std (%) | min | median | searched architecture | search s | train s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        arch = f"{r['architecture']['encoder']} / {r['architecture']['decoder']}"
        for cls, d in r["dice"].items():
            lines.append(
                f"| {r['precision']} | {cls} | {100 * d['mean']:.2f} ± {100 * d['std']:.2f} | {100 * d['min']:.2f} | "
                f"{100 * d['median']:.2f} | {arch} | {r['timings_s']['search_s']:.0f} | "
                f"{r['timings_s']['train_s']:.0f} |"
            )
    by = {r["precision"]: r for r in rows}
    if {"fp32", "bf16"} <= set(by):
        gaps = {c: 100 * (by["bf16"]["dice"][c]["mean"] - by["fp32"]["dice"][c]["mean"]) for c in by["fp32"]["dice"]}
        lines += ["", "bf16 minus fp32 mean Dice (points): " + ", ".join(f"{c} {g:+.2f}" for c, g in gaps.items())]
    text = "\n".join(lines)
    print(text)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output + ".md").write_text(text + "\n")
        Path(args.output + ".json").write_text(json.dumps(rows, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--precision", choices=["fp32", "bf16"], default=None)
    ap.add_argument("--table", action="store_true", help="compare the finished runs under --work_dir")
    ap.add_argument("--dataset_dir", default=str(REPO.parent / "shared" / "data" / "msd_hippocampus"))
    ap.add_argument("--work_dir", required=True)
    ap.add_argument("--output", default=None, help="table prefix (writes .md and .json)")
    ap.add_argument("--init_filters", type=int, default=16)
    ap.add_argument("--search_epochs", type=int, default=12)
    ap.add_argument("--warmup_epochs", type=int, default=2)
    ap.add_argument("--train_epochs", type=int, default=40)
    ap.add_argument("--epoch_length", type=int, default=25)
    args = ap.parse_args()
    if args.table:
        table(args)
    elif args.precision:
        if not Path(args.dataset_dir, "dataset.json").is_file():
            raise SystemExit(f"no MSD hippocampus dataset at {args.dataset_dir}")
        run_precision(args)
    else:
        ap.error("give --precision fp32|bf16 to run, or --table to compare")


if __name__ == "__main__":
    main()
