"""The stages of the MB-NAS bundles (``bundles/mbnas_spleen``, ``bundles/mbnas_prostate``): data, search, retrain,
inference (Bosma et al., "Mixed-Block Neural Architecture Search for Medical Image Segmentation", SPIE Medical
Imaging 2022, §2.3-§3).

Folders follow the other bundles: ``<work_dir>/fold<k>/search`` (the local search: ``trials.jsonl``,
``trajectory.jsonl``, ``search.json``, ``best.json``, ``arch.json``, ``history.png``, ``best_network.png``),
``<work_dir>/fold<k>/train`` (``model.pt``, ``settings.json``, ``arch.json``), ``.../infer`` and ``.../eval``.
Outer fold ``k`` of ``num_folds`` is the held-out S_test; the search and the retraining see S_train + S_val only,
which the search splits again into ``num_search_folds`` folds for its trials (:class:`.trial.SliceTrial`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .encoding import MAX_DOWNSAMPLINGS, NUM_NODES, MBNASEncoding
from .presets import comparison_restrictions, unet_encoding

__all__ = ["RESTRICTIONS", "fold_splits", "make_inferer", "make_runner", "resolve_dataset", "retrain", "run_search"]

logger = logging.getLogger(__name__)

#: the bundle key ``restriction``: the paper's four searches (§2.4)
RESTRICTIONS = ("mbnas", "micro", "macro", "bilevel")
#: names used in titles and tables
TITLES = {"mbnas": "MB-NAS", "micro": "Micro-NAS", "macro": "Macro-NAS", "bilevel": "Bilevel-NAS"}


def resolve_dataset(dataset_dir: str | os.PathLike | None, phantom_dir: str | os.PathLike, in_channels: int = 1,
                    num_classes: int = 2, phantom_cases: int = 8, phantom_shape: Sequence[int] = (64, 64, 16)) -> str:
    """``dataset_dir``, or phantoms in ``<phantom_dir>/phantom_data`` when it is ``None``: CT-like for one channel
    (:func:`vnas_monai.data.make_phantom_dataset`), MRI-like for two (:mod:`vnas_monai.data.mr_phantom`).

    Raises:
        ValueError: phantoms of another number of channels than 1 or 2 (key ``in_channels``).
        FileNotFoundError: a ``dataset_dir`` that does not exist.
    """
    from vnas_monai.data import resolve_dataset_dir
    from vnas_monai.data.mr_phantom import resolve_mr_dataset_dir

    kwargs = {"num_cases": int(phantom_cases), "shape": tuple(int(s) for s in phantom_shape),
              "num_classes": int(num_classes)}
    if dataset_dir not in (None, "", "phantom"):
        return resolve_dataset_dir(dataset_dir, phantom_dir)
    if int(in_channels) == 1:
        return resolve_dataset_dir(None, phantom_dir, **kwargs)
    if int(in_channels) == 2:
        return resolve_mr_dataset_dir(None, phantom_dir, **kwargs)
    raise ValueError(f"phantoms have 1 (CT) or 2 (MRI) channels; in_channels={in_channels} needs a dataset_dir.")


def fold_splits(dataset_root: str, fold: int = 0, num_folds: int = 4, seed: int = 0,
                datalist_file: str | os.PathLike | None = None, layout: str = "auto",
                max_cases: int | None = None) -> dict[str, list[dict[str, Any]]]:
    """:func:`vnas_monai.data.fold_datalists` of ``dataset_root`` (the bundles' ``splits`` key)."""
    from vnas_monai.data import fold_datalists

    return fold_datalists(dataset_root, fold=fold, num_folds=num_folds, seed=seed, datalist_file=datalist_file,
                          layout=layout, max_cases=max_cases)


def make_runner(scheduler: str | None = None, n_workers: int = 1, gpu: bool | None = None) -> Any:
    """Where the trials run (bundle keys ``scheduler``, ``n_workers``, ``gpu``).

    ``scheduler`` ``None`` with one worker: in this process (:class:`vnas_monai.strategies.SerialRunner`); ``None``
    with more: a Dask ``LocalCluster`` of ``n_workers`` processes; an address (``"tcp://host:8786"``): that running
    Dask scheduler, each trial asking for a ``GPU`` resource when ``gpu`` (see :mod:`vnas_monai.strategies.trials`).
    """
    from vnas_monai.strategies import DaskRunner, SerialRunner

    if scheduler not in (None, ""):
        return DaskRunner(address=str(scheduler), gpu=bool(gpu))
    if int(n_workers) <= 1:
        return SerialRunner()
    import torch

    local_gpu = torch.cuda.is_available() if gpu is None else bool(gpu)
    return DaskRunner(n_workers=int(n_workers), resources={"GPU": 1} if local_gpu else None, gpu=local_gpu)


def initial_encoding(initial: Any = None, num_nodes: int = NUM_NODES,
                     max_downsamplings: int = MAX_DOWNSAMPLINGS) -> MBNASEncoding:
    """The search's start: ``initial`` (an encoding, its dict or JSON file), default the U-Net
    (:func:`unet_encoding`)."""
    if initial in (None, "", "unet"):
        return unet_encoding(int(num_nodes), max_downsamplings=int(max_downsamplings))
    return MBNASEncoding.resolve(initial)


def run_search(trial: Any, output_dir: str | os.PathLike, restriction: str = "mbnas", max_evaluations: int = 150,
               folds: Sequence[int] = (0,), seeds: Sequence[int] = (0,), seed: int = 0, num_nodes: int = NUM_NODES,
               max_downsamplings: int = MAX_DOWNSAMPLINGS, runner: Any = None, initial: Any = None,
               progress: bool = True) -> dict[str, Any]:
    """One local search (:func:`vnas_monai.strategies.run_local_search`) in ``output_dir``, then its figures.

    Args:
        trial: the trial function (:class:`.trial.SliceTrial`).
        output_dir: the search folder (a rerun resumes from its ``trials.jsonl``).
        restriction: ``mbnas`` | ``micro`` | ``macro`` | ``bilevel`` (:func:`.presets.comparison_restrictions`).
        max_evaluations: the budget in distinct encodings (the paper: 150).
        folds, seeds: trial folds x network seeds averaged into a score (the paper: 5 x 3).
        seed: the search's own seed (variable order, tie-breaks).
        num_nodes, max_downsamplings: the U-Net start's shape when ``initial`` is ``None``.
        runner: from :func:`make_runner` (closed here); ``None``: in process.
        initial: another start encoding (its JSON file or dict).
        progress: the progress bar.

    Returns:
        ``{"digest", "score", "initial_score", "evaluations", "converged", "trials_run", "arch"}`` (``arch``: the
        path of ``arch.json``).

    Raises:
        ValueError: an unknown ``restriction`` (naming the key), or a folder holding a search with other settings.
    """
    from vnas_monai.strategies import run_local_search

    from .figures import plot_search_history

    if restriction not in RESTRICTIONS:
        raise ValueError(f"restriction {restriction!r} is not one of {list(RESTRICTIONS)} (bundle key "
                         "'restriction').")
    start = initial_encoding(initial, num_nodes, max_downsamplings)
    out = Path(output_dir)
    try:
        result = run_local_search(start, trial, out, folds=folds, seeds=seeds, budget=int(max_evaluations),
                                  seed=int(seed), runner=runner, progress=progress,
                                  **comparison_restrictions(start.num_nodes)[restriction])
    finally:
        if runner is not None:
            runner.close()
    arch = result.best.save(out / "arch.json")
    title = f"{TITLES[restriction]} local search from the U-Net"
    plot_search_history({TITLES[restriction]: result.history}, out / "history.png", title=title,
                        reference={"start": result.history[0][2]})
    result.best.plot(out / "best_network.png", title=f"{TITLES[restriction]} best network {result.best.digest()} "
                                                     f"(score {result.score:.4f})")
    summary = {"digest": result.best.digest(), "score": result.score, "initial_score": result.history[0][2],
               "evaluations": result.evaluations, "converged": result.converged, "trials_run": result.trials_run,
               "arch": str(arch)}
    logger.info("MB-NAS search (%s): %s", restriction, summary)
    print(f"{TITLES[restriction]} search: best {summary['digest']} score {result.score:.4f} (start "
          f"{summary['initial_score']:.4f}) after {result.evaluations} evaluations -> {arch}")
    return summary


def retrain(trial: Any, cases: Sequence[Mapping[str, Any]], arch: Any, output_dir: str | os.PathLike, seed: int = 0,
            epochs: int | None = None, class_names: Sequence[str] | None = None,
            val_cases: Sequence[Mapping[str, Any]] = ()) -> Path:
    """Train ``arch`` from scratch on ``cases`` (the whole training set) with ``trial``'s recipe and write
    ``model.pt`` (a plain state dict), ``arch.json`` and ``settings.json`` into ``output_dir``.

    Args:
        trial: the search's :class:`.trial.SliceTrial` (its data, patch and optimiser settings).
        cases: the training cases (the fold's S_train + S_val).
        arch: the encoding (or its JSON file: the search's ``arch.json``).
        output_dir: the run folder (``<work_dir>/fold<k>/train``).
        seed: the network seed.
        epochs: the training length (default: the trial's).
        class_names: stored in ``settings.json`` for the evaluation.
        val_cases: optional cases whose Dice is logged after every epoch.

    Returns:
        The path of ``model.pt``.

    Raises:
        FileNotFoundError: ``arch`` names a missing file (run the search first).
    """
    import torch

    from vnas_monai.bundle.settings import save_run_settings
    from vnas_monai.io import atomic_write

    if isinstance(arch, (str, os.PathLike)) and not Path(arch).is_file():
        raise FileNotFoundError(f"architecture file {arch} does not exist: run the search stage first (or set "
                                "the key 'arch').")
    enc = MBNASEncoding.resolve(arch)
    recipe = dataclasses.replace(trial, epochs=int(epochs or trial.epochs))
    net, info = recipe.train(enc, list(cases), int(seed), list(val_cases), log=print)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    enc.save(out / "arch.json")
    save_run_settings(out, space="mbnas", spatial_dims=recipe.spatial_dims, in_channels=recipe.in_channels,
                      num_classes=recipe.num_classes, init_channels=recipe.init_channels,
                      patch_size=list(recipe.patch_size), slice_size=recipe.slice_size,
                      intensity_clip=recipe.intensity_clip, class_names=list(class_names) if class_names else None,
                      act=recipe.act, norm=recipe.norm, seed=int(seed), training=info, architecture=enc,
                      # the export rebuilds volume_transforms; another preprocessing (the benchmark's plan) is named
                      preprocessing="volume_transforms" if recipe.volumes is None else type(recipe.volumes).__name__)
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    atomic_write(out / "model.pt", lambda f: torch.save(state, f))
    print(f"retrained {enc.summary()} for {info['epochs']} epochs on {len(cases)} cases -> {out / 'model.pt'}")
    return out / "model.pt"


def make_inferer(spatial_dims: int, patch_size: Sequence[int], sw_batch_size: int = 32, overlap: float = 0.0,
                 precision: str = "auto") -> Any:
    """The inference of the bundles: a MONAI ``SliceInferer`` over the last spatial axis (axial slices) for a 2D
    network, a ``SlidingWindowInferer`` for a 3D one, under ``precision``."""
    from monai.inferers import SliceInferer, SlidingWindowInferer

    from vnas_monai.engine import PrecisionInferer

    roi = [int(s) for s in patch_size]
    if int(spatial_dims) == 2:
        inner = SliceInferer(roi_size=roi, sw_batch_size=int(sw_batch_size), overlap=float(overlap), spatial_dim=2)
    else:
        inner = SlidingWindowInferer(roi_size=roi, sw_batch_size=int(sw_batch_size), overlap=float(overlap),
                                     mode="gaussian")
    return PrecisionInferer(inner, precision=precision)
