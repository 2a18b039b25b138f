"""V-NAS against MONAI's UNet on the real MSD hippocampus MRI, under the same CPU time budget (issue 4's benchmark).

V-NAS spends its budget on a search (``search.json``) and on retraining the searched architecture from scratch
(``train.json``); UNet spends the whole budget training (``train.json`` with ``network_def`` replaced). Both are
evaluated on the held-out fold (S_test of fold 0 of a seeded 4-fold split) with ``evaluate.json``, and the table is
printed in the paper's format (mean ± std, max, min, median per class).

Run (about ``2 * --budget_min`` minutes plus evaluation; the paper's protocol on a 2-core CPU):

    OMP_NUM_THREADS=1 python benchmarks/hippocampus_budget.py --budget_min 30 --output benchmarks/results/hippocampus

One thread makes the budget 30 CPU minutes exactly (wall time on one core); with more threads each method gets more
CPU time in the same wall time.

``--quick`` runs the same pipeline with 1-minute budgets and a few test cases (a smoke test of the script).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from vnas_monai.bundle.utils import LOSSES

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "vnas_nih"
#: MONAI's UNet of the 3D U-Net row (4.8 M parameters; V-NAS at init_filters 16 has 2.5 M).
UNET = {
    "_target_": "UNet",
    "spatial_dims": 3,
    "in_channels": 1,
    "out_channels": 3,
    "channels": [16, 32, 64, 128, 256],
    "strides": [2, 2, 2, 2],
    "num_res_units": 2,
}
TRAIN_ONLY = ("roi_size", "num_samples", "batch_size", "max_epochs", "flip_axes")


def run_with_time_limit(config: Path, run_id: str, seconds: float, **overrides: Any) -> float:
    """Run a bundle within ``seconds`` of wall time (set-up included); returns the wall time.

    :class:`vnas_monai.engine.TimeBudget` stops the trainer when the time is spent and stretches the bundle's poly
    learning-rate decay over the budget, so that each method ends its run annealed.
    """
    from monai.bundle import ConfigWorkflow

    from vnas_monai.engine import TimeBudget

    start = time.perf_counter()
    wf = ConfigWorkflow(config_file=str(config), workflow_type=None, run_id=run_id, **overrides)
    wf.initialize()
    if time.perf_counter() - start >= seconds:
        raise SystemExit(f"{config.name}: initialisation alone took more than the {seconds:.0f} s budget")
    budget = TimeBudget(seconds, lr_scheduler=wf.parser.get_parsed_content("lr_scheduler"), start=start)
    budget.attach(wf.parser.get_parsed_content("train#trainer"))
    wf.run()
    wf.finalize()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset_dir", default=str(REPO.parent / "shared" / "data" / "msd_hippocampus"))
    ap.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "hippocampus"))
    ap.add_argument("--budget_min", type=float, default=30.0, help="CPU minutes for each method")
    ap.add_argument("--search_fraction", type=float, default=0.3, help="share of V-NAS's budget spent searching")
    ap.add_argument("--init_filters", type=int, default=16, help="V-NAS width (at 8 its decoder is 2 channels wide)")
    ap.add_argument("--loss", default="dice_ce", choices=sorted(LOSSES), help="retraining loss of both (search: ce)")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if not Path(args.dataset_dir, "dataset.json").is_file():
        raise SystemExit(f"no MSD hippocampus dataset at {args.dataset_dir}")
    budget = 60.0 if args.quick else args.budget_min * 60
    work = Path(args.output)
    common: dict[str, Any] = dict(
        dataset_dir=args.dataset_dir,
        work_dir=str(work),
        fold=0,
        num_folds=4,
        num_classes=3,
        intensity_clip=None,
        roi_size=[32, 32, 32],
        num_samples=4,
        batch_size=2,
        init_filters=args.init_filters,
        num_workers=0,
        device="auto",
        max_epochs=10_000,  # stopped by the time budget
        flip_axes=[0],  # left-right only: a flip along y swaps the anterior and posterior parts
    )
    if args.quick:
        common["max_cases"] = 24
    evaluate = {k: v for k, v in common.items() if k not in TRAIN_ONLY}
    evaluate["infer_roi_size"] = [64, 64, 64]
    evaluate["class_names"] = "auto"  # Anterior, Posterior from dataset.json
    timings = {}

    retrain = dict(val_interval=10_000, loss=args.loss)  # both retrainings: no validation, the same loss
    search_s = budget * args.search_fraction
    timings["vnas_search_s"] = run_with_time_limit(
        BUNDLE / "search.json", "search", search_s, **common, arch_warmup_epochs=2, epoch_length=20
    )
    arch = work / "fold0" / "search" / "arch.json"
    timings["vnas_train_s"] = run_with_time_limit(
        BUNDLE / "train.json",
        "run",
        budget - timings["vnas_search_s"],
        **common,
        **retrain,
        arch=str(arch),
    )
    timings["unet_train_s"] = run_with_time_limit(
        BUNDLE / "train.json",
        "run",
        budget,
        **{**common, "work_dir": str(work / "unet")},
        datalist_file=str(work / "folds.json"),
        **retrain,
        network_def=UNET,
    )
    from vnas_monai.workflows.crossval import run_bundle

    run_bundle(BUNDLE / "evaluate.json", "run", **evaluate, arch=str(arch))
    unet_eval = dict(evaluate, work_dir=str(work / "unet"), datalist_file=str(work / "folds.json"))
    # evaluate.json resolves a V-NAS architecture even when network_def replaces the network: give it a preset
    run_bundle(BUNDLE / "evaluate.json", "run", **unet_eval, network_def=UNET, arch="nih")
    rows = {}
    for name, root in (("V-NAS (search + retrain)", work), ("UNet (MONAI)", work / "unet")):
        rows[name] = json.loads((root / "fold0" / "eval" / "summary.json").read_text())
    lines = [
        f"MSD hippocampus, fold 0 of 4 (held-out S_test), {budget / 60:.0f} CPU minutes per method, "
        f"search fraction {args.search_fraction}, retraining loss {args.loss}",
        "",
        "| method | class | Dice mean ± std (%) | max | min | median |",
        "|---|---|---|---|---|---|",
    ]
    for name, summary in rows.items():
        for cls, metrics in summary["classes"].items():
            d = metrics["dice"]
            lines.append(
                f"| {name} | {cls} | {100 * d['mean']:.2f} ± {100 * d['std']:.2f} | {100 * d['max']:.2f} | "
                f"{100 * d['min']:.2f} | {100 * d['median']:.2f} |"
            )
    arch_json = json.loads(arch.read_text())
    enc, dec = arch_json["paper"]["encoder"], arch_json["paper"]["decoder"]
    lines += ["", f"searched architecture: encoder [{enc}] decoder [{dec}]"]
    lines += [f"timings (s): {json.dumps({k: round(v) for k, v in timings.items()})}"]
    import torch

    lines += [f"torch threads: {torch.get_num_threads()}"]
    table = "\n".join(lines)
    print(table)
    (work / "table.md").write_text(table + "\n")
    (work / "results.json").write_text(json.dumps({"timings": timings, "summaries": rows}, indent=1))


if __name__ == "__main__":
    main()
