#!/usr/bin/env python
"""Sliding-window inference eager against compiled with frozen weights (``PrecisionInferer(compile=True)``), in
fp32 and bf16 (issue 12).

    OMP_NUM_THREADS=2 python benchmarks/bench_compile_inference.py --full-resolution-channels 0 --output F.json
    OMP_NUM_THREADS=2 python benchmarks/bench_compile_inference.py --row runs/b30r/vnas_random4 --output F.json

Speed (default): ``bench_search.py``'s VNASNet (``--init-filters`` 16, random weights; ``--full-resolution-channels``
0 is the bundles' network, 16 the hippocampus benchmark's) on a 128x128x64 volume (``--volume``), 64^3 windows
(``--roi``), overlap 0.25,
window batch 2, each (precision, eager / compiled) the minimum of ``--repeats`` runs after the compiling call,
whose time is reported too. ``--row``: a trained V-NAS row of a benchmark ``work_dir`` instead (its ``model.pt``,
architecture, plan and held-out fold): each held-out case predicted as the benchmark evaluates it (gaussian
blending, overlap 0.5, window batch 4) in fp32 eager, bf16 eager and bf16 compiled; mean Dice of each against the
labels, and the share of voxels where compiled and eager bf16 agree.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from monai.inferers import SlidingWindowInferer

from vnas_monai.engine import PrecisionInferer

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _timed(fn, repeats: int) -> tuple[float, list[float]]:
    first = time.perf_counter()
    fn()
    first = time.perf_counter() - first
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return first, times


def speed(full_resolution_channels: int, repeats: int, init_filters: int = 16, volume=(128, 128, 64),
          roi=(64, 64, 64)) -> dict:
    import bench_search

    torch.manual_seed(0)
    net = bench_search.build_vnasnet(dict(fast=True), init_filters, full_resolution_channels=full_resolution_channels)
    net.eval()
    x = torch.randn(1, 1, *volume)
    sliding = SlidingWindowInferer(roi_size=tuple(roi), sw_batch_size=2, overlap=0.25)
    out: dict = {}
    for precision in ("fp32", "bf16"):
        ref = None
        for compiled in (False, True):
            inferer = PrecisionInferer(sliding, precision, compile=compiled)
            with torch.no_grad():
                first, times = _timed(lambda: inferer(x, net), repeats)
                pred = inferer(x, net)
            ref = pred if ref is None else ref
            out[f"{precision}_{'compiled' if compiled else 'eager'}"] = dict(
                time_s_min=min(times), time_s_all=times, first_call_s=first,
                max_abs_diff_vs_eager=float((pred - ref).abs().max()), max_abs_logit=float(ref.abs().max()))
    e32, e16, c32, c16 = (out[k]["time_s_min"] for k in ("fp32_eager", "bf16_eager", "fp32_compiled", "bf16_compiled"))
    out["ratios"] = {"bf16_eager_vs_fp32_eager": e32 / e16, "bf16_compiled_vs_fp32_compiled": c32 / c16,
                     "bf16_compiled_vs_fp32_eager": e32 / c16, "bf16_compiled_vs_bf16_eager": e16 / c16,
                     "fp32_compiled_vs_fp32_eager": e32 / c32}
    return out


def row_accuracy(row: Path) -> dict:
    from vnas_monai.baselines.pipeline import eval_dataset
    from vnas_monai.benchmark.evaluate import read_result
    from vnas_monai.benchmark.vnas import VNAS_NETWORK
    from vnas_monai.data import fold_datalists
    from vnas_monai.evaluation import case_metrics
    from vnas_monai.evaluation.tables import case_mean
    from vnas_monai.spaces.vnas import VNASNet
    from vnas_monai.spaces.vnas.encoding import Architecture

    work = row.parent
    result = read_result(row / "result.json")
    settings, meta = result["settings"], result["meta"]
    plan = json.loads((work / "plan.json").read_text())
    splits = fold_datalists(settings["dataset_dir"], fold=settings["fold"], num_folds=settings["num_folds"],
                            seed=settings["seed"], datalist_file=work / "folds.json")
    arch = Architecture.from_paper(*meta["architecture"].split(" | "))
    net = VNASNet(architecture=arch, in_channels=1, out_channels=len(plan["class_names"]), **VNAS_NETWORK)
    net.load_state_dict(torch.load(row / "model.pt", weights_only=True))
    net.eval()
    sliding = SlidingWindowInferer(roi_size=meta["roi_size"], sw_batch_size=4, overlap=0.5, mode="gaussian")
    inferers = {"fp32_eager": PrecisionInferer(sliding, "fp32"), "bf16_eager": PrecisionInferer(sliding, "bf16"),
                "bf16_compiled": PrecisionInferer(sliding, "bf16", compile=True)}
    dice: dict[str, list[float]] = {k: [] for k in inferers}
    times: dict[str, float] = {k: 0.0 for k in inferers}
    agree, voxels = 0, 0
    data = eval_dataset(splits["test"], plan)
    with torch.no_grad():
        for i in range(len(data)):
            item = data[i]
            x = item["image"][None].float()
            preds = {}
            for k, inferer in inferers.items():
                t = time.perf_counter()
                preds[k] = inferer(x, net)[0].argmax(0, keepdim=True)
                times[k] += time.perf_counter() - t if i else 0.0  # the first case compiles
                m = case_metrics(preds[k], item["label"], len(plan["class_names"]), spacing=plan["spacing"])
                dice[k].append(100 * case_mean(m["dice"]))  # the tables' and paired's per-case Dice
            agree += int((preds["bf16_compiled"] == preds["bf16_eager"]).sum())
            voxels += preds["bf16_eager"].numel()
    return {"row": str(row), "architecture": meta["architecture"], "cases": len(data),
            "mean_dice": {k: sum(v) / len(v) for k, v in dice.items()},
            "max_case_dice_diff_compiled_vs_eager_bf16": max(abs(a - b) for a, b in zip(dice["bf16_compiled"],
                                                                                        dice["bf16_eager"])),
            "voxel_agreement_compiled_vs_eager_bf16": agree / voxels,
            "inference_s_after_first_case": times}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full-resolution-channels", dest="fr", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--init-filters", dest="init_filters", type=int, default=16)
    ap.add_argument("--volume", type=int, nargs=3, default=(128, 128, 64))
    ap.add_argument("--roi", type=int, nargs=3, default=(64, 64, 64))
    ap.add_argument("--row", type=Path, help="a trained V-NAS row of a benchmark work_dir: accuracy on its fold")
    ap.add_argument("--output", type=Path)
    args = ap.parse_args()
    if args.row:
        result = row_accuracy(args.row)
    else:
        result = speed(args.fr, args.repeats, args.init_filters, args.volume, args.roi)
        result.update(full_resolution_channels=args.fr, init_filters=args.init_filters, volume=list(args.volume),
                      roi=list(args.roi))
    result.update(threads=torch.get_num_threads(), torch=torch.__version__)
    text = json.dumps(result, indent=1)
    print(text)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n")


if __name__ == "__main__":
    main()
