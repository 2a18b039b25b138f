"""What the NAS-3D-U-Net bundles (``bundles/nas3dunet_brats``) call at run time: the dataset of a layout, the fold
splits, the brain-wise normalisation statistics of a fold and the end of a search (Wang, BraTS 2019, §2.2, §3.1-3.4).

- :func:`brain_splits`: the cases of the bundle key ``layout`` (``"brats"``: BraTS 2019-2021 case folders,
  :func:`vnas_monai.data.load_brats_datalist`; ``"msd"``: MSD Task01_BrainTumour, 4D NIfTI with labels 1 / 2 / 3;
  ``"generic"``: any MSD-layout dataset whose labels 1 .. R are R disjoint regions, e.g. the hippocampus), or the
  multimodal phantoms (:func:`vnas_monai.data.make_brain_phantoms`) when ``dataset_dir`` is null; folds are dealt
  once and kept in ``<work_dir>/folds.json``. S_test is the fold; the other cases split into the kernel-parameter
  cases (``train``) and, for the hybrid parameters, ``arch_fraction`` = 1/5 of them (``val``, §3.4).
- :func:`fold_brain_stats`: μ, σ per modality over the non-zero voxels of the fold's training cases (Eq. 1), fitted
  once per fold and kept in ``<work_dir>/fold<k>/brain_stats.json``; the training run copies them into its
  ``settings.json``, from which inference, evaluation and the export read them (:func:`run_brain_stats`).
- :func:`finish_search`: ``genotype.json`` (the stop rule's choice, Table 2) and the cells drawn as Fig. 6.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vnas_monai.io import atomic_write_text

__all__ = ["LAYOUTS", "brain_case_formatter", "brain_case_name", "brain_datalist", "brain_splits", "finish_search",
           "fold_brain_stats", "inference_cases", "region_dice_metrics", "resolve_brain_dataset", "resolve_regions",
           "run_brain_stats", "run_genotype"]

#: the bundle key ``layout``: the dataset layout and its region convention (:mod:`vnas_monai.data.regions`)
LAYOUTS = ("brats", "msd", "generic")
STATS_FILE = "brain_stats.json"


def _layout(layout: Any) -> str:
    key = str(layout).strip().lower()
    if key not in LAYOUTS:
        raise ValueError(f"bundle key 'layout' must be one of {list(LAYOUTS)} (brats: BraTS 2019-2021 case folders, "
                         f"labels 1/2/4; msd: MSD Task01_BrainTumour, labels 1/2/3; generic: an MSD-layout dataset "
                         f"whose labels 1..R are R regions), got {layout!r}.")
    return key


def resolve_brain_dataset(dataset_dir: Any, work_dir: str | os.PathLike, layout: str = "brats",
                          phantom_cases: int = 8, phantom_shape: Sequence[int] = (64, 64, 64), seed: int = 0) -> str:
    """The dataset folder of a run: ``dataset_dir``, or multimodal phantoms in ``<work_dir>/phantom_data`` (in the
    BraTS or MSD layout) when it is null.

    Raises:
        FileNotFoundError: ``dataset_dir`` does not exist. ValueError: phantoms asked for the ``generic`` layout.
    """
    lay = _layout(layout)
    if dataset_dir in (None, "", "phantom"):
        if lay == "generic":
            raise ValueError("bundle key 'dataset_dir' is null but layout is 'generic': the embedded phantoms are "
                             "multimodal brain tumours (layout 'brats' or 'msd'); give dataset_dir.")
        from vnas_monai.data.brain_phantom import make_brain_phantoms

        return make_brain_phantoms(Path(work_dir) / "phantom_data", n_cases=int(phantom_cases),
                                   shape=[int(s) for s in phantom_shape], layout=lay, seed=int(seed))
    path = Path(dataset_dir).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"bundle key 'dataset_dir': {path} does not exist or is not a folder.")
    return str(path.resolve())


def brain_datalist(dataset_root: str | os.PathLike, layout: str = "brats") -> list[dict[str, Any]]:
    """The labelled cases of a dataset in ``layout``, ``{"image": path or [paths], "label": path, "case": name}``."""
    lay = _layout(layout)
    if lay == "brats":
        from vnas_monai.data.brats import load_brats_datalist

        return load_brats_datalist(dataset_root)
    from vnas_monai.data.datalist import load_datalist

    if not (Path(dataset_root) / "dataset.json").is_file():
        raise FileNotFoundError(f"layout {lay!r} reads an MSD dataset: {dataset_root} has no dataset.json (for BraTS "
                                "case folders set layout 'brats').")
    cases = load_datalist(dataset_root, layout="msd")
    from vnas_monai.bundle.datalists import case_name

    return [{**c, "case": case_name(c["image"])} for c in cases]


def _read_folds(path: Path, expect: Mapping[str, Any]) -> list[list[str]] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except ValueError as e:
        raise ValueError(f"folds file {path} is not valid JSON: {e}") from None
    for key, value in expect.items():
        if data.get(key) != value:
            raise ValueError(f"folds file {path} was made with {key}={data.get(key)!r}, this run asks {key}={value!r}: "
                             "delete it or use another work_dir.")
    return [list(f) for f in data["folds"]]


def brain_splits(dataset_root: str | os.PathLike, work_dir: str | os.PathLike, layout: str = "brats", fold: int = 0,
                 num_folds: int = 5, seed: int = 0, max_cases: int | None = None,
                 arch_fraction: float = 0.2) -> dict[str, list[dict[str, Any]]]:
    """``{"train", "val", "test", "trainval"}`` of one fold (module docstring); cases in name order.

    Raises:
        ValueError: a ``fold`` outside ``[0, num_folds)``, too few cases, or a folds file of another dataset.
    """
    from vnas_monai.data.folds import make_folds

    if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < int(num_folds):
        raise ValueError(f"bundle key 'fold' must be an int in [0, num_folds={num_folds}), got {fold!r}.")
    if not 0 < float(arch_fraction) < 1:
        raise ValueError(f"bundle key 'arch_fraction' must be in (0, 1), got {arch_fraction!r}.")
    cases = brain_datalist(dataset_root, layout)[: max_cases or None]
    by_name = {c["case"]: c for c in cases}
    expect = {"dataset_dir": str(Path(dataset_root).resolve()), "layout": _layout(layout),
              "num_folds": int(num_folds), "seed": int(seed), "max_cases": max_cases}
    path = Path(work_dir) / "folds.json"
    names = _read_folds(path, expect)
    if names is None:
        folds = make_folds([{"image": c["case"], "label": c["case"]} for c in cases], int(num_folds), int(seed))
        names = [[c["image"] for c in f] for f in folds["folds"]]
        atomic_write_text(path, json.dumps({**expect, "folds": names}, indent=1) + "\n")
    missing = [n for f in names for n in f if n not in by_name]
    if missing:
        raise ValueError(f"folds file {path} names cases {missing[:3]} that {dataset_root} does not hold.")
    test = [by_name[n] for n in sorted(names[fold])] if int(num_folds) > 1 else []
    rest = sorted(n for f, fold_names in enumerate(names) if f != fold or int(num_folds) == 1 for n in fold_names)
    if len(rest) < 2:
        raise ValueError(f"fold {fold} leaves {len(rest)} training case(s); the search needs at least 2 (one for the "
                         "hybrid parameters): give more cases or fewer folds.")
    shuffled = list(rest)
    random.Random(f"nas3dunet-{seed}-{fold}").shuffle(shuffled)
    n_arch = min(max(1, round(len(rest) * float(arch_fraction))), len(rest) - 1)
    val = [by_name[n] for n in sorted(shuffled[:n_arch])]
    train = [by_name[n] for n in sorted(shuffled[n_arch:])]
    return {"train": train, "val": val, "test": test, "trainval": train + val}


def resolve_regions(layout: str, num_regions: int | None = None, dataset_root: str | os.PathLike | None = None) -> Any:
    """The :class:`vnas_monai.data.regions.RegionLayout` of a bundle: ``"brats"`` / ``"msd"`` (ET, TC, WT), or
    ``"generic"`` with ``num_regions`` (default: the foreground labels of the dataset's ``dataset.json``)."""
    from vnas_monai.data.regions import get_layout

    lay = _layout(layout)
    if lay == "generic" and num_regions is None:
        meta = Path(dataset_root or "") / "dataset.json"
        if not meta.is_file():
            raise ValueError("layout 'generic' needs the bundle key 'num_regions' (or a dataset.json naming labels).")
        labels = json.loads(meta.read_text()).get("labels", {})
        num_regions = len([k for k in labels if str(k) != "0"])
    return get_layout(lay, num_regions)


def fold_brain_stats(cases: Sequence[Mapping[str, Any]], fold_dir: str | os.PathLike) -> dict[str, Any]:
    """μ, σ per modality of ``cases`` (Eq. 1, :func:`vnas_monai.data.fit_brain_stats`), fitted once and kept in
    ``<fold_dir>/brain_stats.json`` with the case names; a file of other cases is refused."""
    from vnas_monai.data.brainnorm import fit_brain_stats

    path = Path(fold_dir) / STATS_FILE
    names = sorted(str(c.get("case", c["image"])) for c in cases)
    if path.is_file():
        data = json.loads(path.read_text())
        if data.get("cases") != names:
            raise ValueError(f"{path} was fitted on other training cases than this fold's: delete it (or the work_dir) "
                             "to refit the brain-wise normalisation.")
        return data
    data = {**fit_brain_stats(list(cases)), "cases": names}
    atomic_write_text(path, json.dumps(data, indent=1) + "\n")
    return data


def run_brain_stats(checkpoint: str | os.PathLike) -> dict[str, Any]:
    """The brain-wise normalisation statistics of the training run of ``checkpoint`` (its ``settings.json``).

    Raises:
        ValueError: the run has no ``brain_stats`` setting (not a NAS-3D-U-Net training run).
    """
    from vnas_monai.bundle.settings import load_run_settings

    source, stored = load_run_settings(checkpoint)
    stats = stored.get("brain_stats")
    if not isinstance(stats, Mapping) or not {"mean", "std"} <= set(stats):
        raise ValueError(f"bundle key 'checkpoint' {checkpoint}: its run's settings.json ({source or 'missing'}) has "
                         "no brain_stats: give the model.pt of a NAS-3D-U-Net training run (train.json).")
    return dict(stats)


def brain_case_name(source: Any) -> str:
    """The case of an image or label file: its BraTS case folder for ``<case>/<case>_<suffix>.nii.gz`` (or a list of
    such files), else the file's name without extension (:func:`vnas_monai.bundle.case_name`)."""
    from vnas_monai.bundle.datalists import case_name

    if isinstance(source, (list, tuple)):
        source = source[0] if source else ""
    path = Path(str(source))
    if path.parent.name and path.name.startswith(path.parent.name + "_"):
        return path.parent.name
    return case_name(path) if str(source) else "case"


def brain_case_formatter(metadict: Mapping[str, Any], saver: Any = None) -> dict[str, Any]:
    """``SaveImaged(output_name_formatter=...)``: outputs named by :func:`brain_case_name` of the source image."""
    source = metadict.get("filename_or_obj", "") if metadict else ""
    return {"subject": brain_case_name(source), "idx": metadict.get("patch_index") if metadict else None}


def region_dice_metrics(names: Sequence[str]) -> dict[str, Any]:
    """MONAI ``MeanDice`` of each region channel (``val_dice_<name>``), for a validator's ``additional_metrics``."""
    from monai.handlers import MeanDice, from_engine

    def channel(r: int) -> Any:
        both = from_engine(["pred", "label"])
        return lambda out: tuple([t[r:r + 1] for t in ts] for ts in both(out))

    return {f"val_dice_{n}": MeanDice(include_background=True, output_transform=channel(r))
            for r, n in enumerate(names)}


def finish_search(stop_rule: Any, network: Any, output_dir: str | os.PathLike) -> Path:
    """Write ``<output_dir>/genotype.json`` (the stop rule's genotype: the one derived N_C times, else the most
    frequent, Table 2; the supernet's own derivation if the rule saw no epoch) and ``genotype_cells.png`` (Fig. 6).
    Returns the genotype's path."""
    from vnas_monai.engine.architect import unwrap_network

    from .genotype import Genotype

    chosen = stop_rule.result() if stop_rule is not None else None
    geno = Genotype.from_dict(chosen) if chosen is not None else unwrap_network(network).derive()
    out = Path(output_dir)
    path = geno.save(out / "genotype.json")
    geno.plot(out / "genotype_cells.png")
    reason = getattr(stop_rule, "reason", None) or "max_epochs"
    print(f"NAS-3D-U-Net genotype ({reason}): {geno.summary()} -> {path}")
    return path


def run_genotype(checkpoint: str | os.PathLike, genotype: Any = None) -> Any:
    """The genotype of a training run: ``genotype`` if given (a path or dict), else the run's ``settings.json``
    (``architecture``), else ``genotype.json`` beside the weights.

    Raises:
        FileNotFoundError / ValueError: none of them exists or parses (the file is named).
    """
    from vnas_monai.bundle.settings import load_run_settings, resolve_checkpoint

    from .genotype import Genotype

    if genotype not in (None, "", "auto"):
        return Genotype.resolve(genotype)
    _, stored = load_run_settings(checkpoint)
    if isinstance(stored.get("architecture"), Mapping):
        return Genotype.from_dict(stored["architecture"], f"settings.json of {checkpoint}")
    beside = resolve_checkpoint(checkpoint).parent / "genotype.json"
    if not beside.is_file():
        raise FileNotFoundError(f"bundle key 'checkpoint' {checkpoint}: no settings.json nor genotype.json beside it; "
                                "give --genotype (the genotype.json the weights were trained with).")
    return Genotype.load(beside)


def _cases_of(item: Any, brats: bool) -> list[Any]:
    """The cases one ``images`` entry holds: a file, the files of one case, or a folder (BraTS case folders, or
    the NIfTI files below it)."""
    from vnas_monai.bundle.datalists import scan_image_dir

    if isinstance(item, Mapping):
        item = item["image"]
    if isinstance(item, (list, tuple)):
        return [[c for i in item for c in _cases_of(i, False)]]
    path = Path(str(item)).expanduser()
    if path.is_dir():
        if brats:
            from vnas_monai.data.brats import load_brats_datalist

            return [c["image"] for c in load_brats_datalist(path, label=None)]
        return scan_image_dir(path, "images")
    if not path.is_file():
        raise FileNotFoundError(f"bundle key 'images': {path} does not exist.")
    return [str(path.resolve())]


def inference_cases(images: Any = None, input_dir: Any = None, splits: Any = None, layout: str = "brats",
                    split: str = "test") -> list[dict[str, Any]]:
    """The images the inference bundle segments, ``[{"image": path or [paths]}, ...]``: ``images`` (a 4D NIfTI file,
    a folder, a list of the files of one case, or a list of those), else every case of ``input_dir`` (BraTS case
    folders with ``layout`` "brats", else its NIfTI files), else the fold's ``split`` (``splits`` is called).

    Raises:
        FileNotFoundError: an image or folder that does not exist (named). ValueError: no image.
    """
    brats = _layout(layout) == "brats"
    if images not in (None, "", []):
        items = [images] if isinstance(images, (str, os.PathLike, Mapping)) else list(images)
        cases = [c for item in items for c in _cases_of(item, brats)]
    elif input_dir not in (None, ""):
        cases = _cases_of(input_dir, brats)
    else:
        if splits is None:
            raise ValueError("no images to segment: set images=..., input_dir=... or a dataset_dir with folds.")
        data = splits() if callable(splits) else splits
        cases = [c["image"] for c in data[split]]
    if not cases:
        raise ValueError("no images to segment (with num_folds=1 there is no S_test: set images or input_dir).")
    return [{"image": c} for c in cases]
