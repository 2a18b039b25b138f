"""The paper's comparison (Bosma et al., "Mixed-Block Neural Architecture Search for Medical Image Segmentation",
SPIE Medical Imaging 2022, Table 1 and Fig. 2): MB-NAS, Micro-NAS and Macro-NAS local searches from the U-Net, and
the U-Net and ResU-Net references, each final network retrained on the training set and evaluated on held-out
volumes: Dice (DSC), HD95, surface Dice at 2 mm, MMAC and parameters.

``python -m vnas_monai.spaces.mbnas.compare --dataset_dir DIR --out_dir OUT`` runs it in one process, in this order
(each search resumes from its ``OUT/search_<name>/trials.jsonl``), and writes ``OUT/table.md``, ``OUT/table.csv``,
``OUT/results.json``, ``OUT/history.png`` (score against evaluation count, every search) and
``OUT/best_<name>.png`` (each best network, Fig. 2c). The U-Net is every search's start; the ResU-Net is the same
topology with residual blocks (:func:`reference_encodings`). ``--search_only`` stops after the searches of
``--budgets``: two processes can search different spaces into one ``OUT``, and a last call with every budget
resumes them from their archives (no trial runs again) and retrains.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .encoding import MAX_DOWNSAMPLINGS, NUM_NODES, MBNASEncoding
from .presets import unet_encoding

__all__ = ["COLUMNS", "evaluate_encoding", "reference_encodings", "run_comparison", "write_table"]

#: Table 1's columns: name, header
COLUMNS = (("method", "method"), ("dice", "DSC"), ("dice_std", "DSC std (seeds)"), ("hd95_mm", "HD95 (mm)"),
           ("surface_dice", "surface Dice (2 mm)"), ("mmacs", "MMAC"), ("params", "params"),
           ("search_score", "search score"),
           ("evaluations", "evaluations"), ("architecture", "architecture"))


def reference_encodings(num_nodes: int = NUM_NODES, max_downsamplings: int = MAX_DOWNSAMPLINGS
                        ) -> dict[str, MBNASEncoding]:
    """``{"U-Net": ..., "ResU-Net": ...}``: the U-Net encoding with VGG blocks and with residual blocks."""
    return {"U-Net": unet_encoding(num_nodes, max_downsamplings=max_downsamplings),
            "ResU-Net": unet_encoding(num_nodes, max_downsamplings=max_downsamplings, block="residual")}


def _mean(values: Sequence[float]) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def evaluate_encoding(trial: Any, encoding: MBNASEncoding, train_cases: Sequence[Mapping[str, Any]],
                      test_cases: Sequence[Mapping[str, Any]], seed: int = 0, epochs: int | None = None,
                      tolerance_mm: float = 2.0) -> dict[str, Any]:
    """Retrain ``encoding`` on ``train_cases`` with ``trial``'s recipe (``epochs`` long) and evaluate it on every
    volume of ``test_cases`` on the preprocessed grid (:func:`vnas_monai.evaluation.metrics.case_metrics`).

    Returns:
        ``{"dice", "hd95_mm", "surface_dice"}`` (case means of the class means), ``"cases"`` (per case and class),
        ``"params"``, ``"mmacs"``, ``"train_s"``, ``"architecture"``.
    """
    from vnas_monai.engine import resolve_precision, select_device
    from vnas_monai.evaluation.metrics import case_metrics

    from .cost import cost_report

    start = time.perf_counter()
    recipe = dataclasses.replace(trial, epochs=int(epochs or trial.epochs))
    net, info = recipe.train(encoding, list(train_cases), int(seed))
    train_s = time.perf_counter() - start
    device = select_device(recipe.device)
    policy = resolve_precision(recipe.precision, device)
    cases = []
    for volume in recipe._volumes(list(test_cases)):
        pred = recipe.predict(net, volume.image, device, policy)
        m = case_metrics(pred, volume.label.astype(np.int64), recipe.num_classes, volume.spacing, tolerance_mm)
        cases.append({"case": volume.name, **m})
    cost = cost_report(encoding, recipe.patch_size, recipe.in_channels, recipe.num_classes, recipe.init_channels,
                       act=recipe.act, norm=recipe.norm)
    row = {m: _mean([_mean(c[m]) or math.nan for c in cases]) for m in ("dice", "hd95_mm", "surface_dice")}
    return {**row, "cases": cases, "params": cost["params"], "mmacs": cost["mmacs"], "train_s": train_s,
            "epochs": info["epochs"], "architecture": encoding.summary(), "digest": encoding.digest()}


def _finite(value: Any) -> Any:
    """``value`` with every NaN / infinite float as ``None`` (strict JSON)."""
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def _cell(key: str, value: Any) -> str:
    if value is None or value == "":
        return "n/a" if key not in ("search_score", "evaluations", "dice_std") else ""
    if key in ("dice", "dice_std", "surface_dice", "search_score"):
        return f"{100 * value:.2f}" if key != "search_score" else f"{value:.4f}"
    if key == "hd95_mm":
        return f"{value:.2f}"
    if key == "mmacs":
        return f"{value:.1f}"
    if key == "params":
        return f"{int(value):,}"
    return str(value)


def write_table(rows: Sequence[Mapping[str, Any]], out_dir: str | Path, title: str,
                notes: Sequence[str] = ()) -> tuple[Path, Path]:
    """``table.md`` and ``table.csv`` of ``rows`` (keys of :data:`COLUMNS`) in ``out_dir``; returns both paths.
    DSC and surface Dice in %, HD95 in mm."""
    from vnas_monai.io import atomic_write_text

    out = Path(out_dir)
    lines = [f"# {title}", "", "| " + " | ".join(h for _, h in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cell(k, r.get(k)).replace("|", "\\|") for k, _ in COLUMNS) + " |" for r in rows]
    lines += ["", *notes]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([k for k, _ in COLUMNS])
    for r in rows:
        writer.writerow(["" if r.get(k) is None else r.get(k) for k, _ in COLUMNS])
    return (atomic_write_text(out / "table.md", "\n".join(lines) + "\n"),
            atomic_write_text(out / "table.csv", buf.getvalue()))


def run_comparison(trial: Any, test_cases: Sequence[Mapping[str, Any]], out_dir: str | Path,
                   budgets: Mapping[str, int], folds: Sequence[int] = (0,), seeds: Sequence[int] = (0,),
                   seed: int = 0, retrain_epochs: int | None = None, title: str = "MB-NAS comparison",
                   num_nodes: int = NUM_NODES, max_downsamplings: int = MAX_DOWNSAMPLINGS,
                   retrain_seeds: Sequence[int] = (0,), search_only: bool = False) -> list[dict[str, Any]]:
    """The searches of ``budgets`` (``{"mbnas": 40, "micro": 20, "macro": 20}``, restriction -> evaluations) on
    ``trial``'s cases, scored over ``folds`` x ``seeds``; then every best network and the references retrained on
    all of ``trial.cases`` once per seed of ``retrain_seeds`` and evaluated on ``test_cases``. A row holds the means
    over the retraining seeds (``dice_std``: the DSC's standard deviation over them; one short training is noisy).
    Writes the files of the module docstring and returns the table's rows. ``search_only``: stop after the searches
    (no rows): searches of one ``out_dir`` can then run in separate processes, and a last call with every budget
    reuses their archives and retrains."""
    from vnas_monai.io import atomic_write_text

    from .figures import plot_search_history
    from .workflow import TITLES, run_search

    out = Path(out_dir)
    histories: dict[str, list] = {}
    encodings: dict[str, tuple[MBNASEncoding, dict[str, Any]]] = {}
    start_score = None
    for restriction, budget in budgets.items():
        t0 = time.perf_counter()
        summary = run_search(trial, out / f"search_{restriction}", restriction, int(budget), folds, seeds, seed,
                             num_nodes, max_downsamplings, progress=False)
        best = json.loads((out / f"search_{restriction}" / "best.json").read_text())
        histories[TITLES[restriction]] = best["local_search"]["history"]
        enc = MBNASEncoding.from_dict(best)
        enc.plot(out / f"best_{restriction}.png", title=f"{TITLES[restriction]} best network (score "
                                                        f"{summary['score']:.4f})")
        summary["search_s"] = time.perf_counter() - t0
        encodings[TITLES[restriction]] = (enc, summary)
        start_score = summary["initial_score"]
    if search_only:
        return []
    plot_search_history(histories, out / "history.png", title=f"{title}: score against evaluations",
                        reference={"U-Net start": start_score} if start_score is not None else None)
    refs = reference_encodings(num_nodes, max_downsamplings)
    methods = {**encodings, **{k: (v, {}) for k, v in refs.items()}}
    rows, results = [], {}
    for name, (enc, summary) in methods.items():
        runs = [evaluate_encoding(trial, enc, list(trial.cases), test_cases, int(s), retrain_epochs)
                for s in retrain_seeds]
        results[name] = {"retrain_seeds": [int(s) for s in retrain_seeds], "runs": runs, "search": summary}
        dice = [r["dice"] for r in runs if r["dice"] is not None]  # None: no finite case Dice
        means = {m: _mean([math.nan if r[m] is None else r[m] for r in runs])
                 for m in ("dice", "hd95_mm", "surface_dice")}
        rows.append({"method": name, **means,
                     "dice_std": float(np.std(dice)) if len(dice) > 1 else None,
                     **{k: runs[0][k] for k in ("mmacs", "params", "architecture")},
                     "search_score": summary.get("score"), "evaluations": summary.get("evaluations")})
        atomic_write_text(out / "results.json", json.dumps(_finite(results), indent=1) + "\n")
    notes = [f"Test: {len(test_cases)} held-out volumes; DSC and surface Dice in % (mean over foreground classes, "
             f"then cases, then the retraining seeds {[int(s) for s in retrain_seeds]}), HD95 in mm; search scores "
             f"over folds {list(folds)} x seeds {list(seeds)}; MMAC and params at the training patch "
             f"{list(trial.patch_size)} with init_channels {trial.init_channels}. Search score: the mean validation "
             "Dice of the last 20 % epochs of the best encoding's trials (the U-Net start scored "
             f"{start_score if start_score is None else round(start_score, 4)})."]
    write_table(rows, out, title, notes)
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    """The command line of the module docstring (``--help`` lists the options)."""
    from vnas_monai.data import fold_datalists

    from .trial import SliceTrial

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dataset_dir", required=True)
    p.add_argument("--out_dir", required=True)
    p.add_argument("--max_cases", type=int, default=None, help="first N cases of the dataset")
    p.add_argument("--num_folds", type=int, default=5, help="outer folds (fold 0 is the test set)")
    p.add_argument("--in_channels", type=int, default=1)
    p.add_argument("--num_classes", type=int, default=2)
    p.add_argument("--patch_size", type=int, nargs="+", default=[128, 128])
    p.add_argument("--slice_size", type=int, nargs=2, default=None)
    p.add_argument("--intensity_clip", type=float, nargs=2, default=None)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--learning_rate", type=float, default=1e-3)
    p.add_argument("--init_channels", type=int, default=16)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--steps_per_epoch", type=int, default=None)
    p.add_argument("--retrain_epochs", type=int, default=None)
    p.add_argument("--num_search_folds", type=int, default=5)
    p.add_argument("--budgets", default='{"mbnas": 40, "micro": 20, "macro": 20}', help="JSON restriction -> evals")
    p.add_argument("--flip_axes", type=int, nargs="*", default=[0])
    p.add_argument("--search_folds", type=int, nargs="+", default=[0], help="inner folds of every score (paper: 5)")
    p.add_argument("--search_seeds", type=int, nargs="+", default=[0], help="seeds of every score (paper: 3)")
    p.add_argument("--retrain_seeds", type=int, nargs="+", default=[0], help="retrainings of every final network")
    p.add_argument("--search_seed", type=int, default=0, help="the searches' own seed (variable order, tie-breaks)")
    p.add_argument("--title", default="MB-NAS comparison")
    p.add_argument("--search_only", action="store_true",
                   help="run the searches of --budgets and stop; a later call with every budget retrains")
    a = p.parse_args(argv)
    splits = fold_datalists(a.dataset_dir, fold=0, num_folds=a.num_folds, seed=0, max_cases=a.max_cases)
    trial = SliceTrial(splits["trainval"], a.in_channels, a.num_classes, a.num_search_folds, 0, len(a.patch_size),
                       tuple(a.patch_size), a.slice_size, a.intensity_clip, a.batch_size, a.learning_rate,
                       epochs=a.epochs,
                       steps_per_epoch=a.steps_per_epoch, init_channels=a.init_channels, flip_axes=tuple(a.flip_axes))
    rows = run_comparison(trial, splits["test"], a.out_dir, json.loads(a.budgets), a.search_folds, a.search_seeds,
                          seed=a.search_seed, retrain_epochs=a.retrain_epochs, title=a.title,
                          retrain_seeds=a.retrain_seeds, search_only=a.search_only)
    if a.search_only:
        print(f"searches {list(json.loads(a.budgets))} done in {a.out_dir}; rerun without --search_only to retrain")
        return
    print((Path(a.out_dir) / "table.md").read_text())
    print(f"{len(rows)} methods -> {a.out_dir}")


if __name__ == "__main__":
    main()
