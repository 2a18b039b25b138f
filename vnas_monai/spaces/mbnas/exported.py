"""The MB-NAS side of the MONAI Label export (:func:`vnas_monai.export.export_bundle` through the space's
:class:`vnas_monai.spaces.BundleNetwork`, :data:`BUNDLE`; Bosma et al., SPIE Medical Imaging 2022, §2.3).

``python -m vnas_monai export_bundle --checkpoint <work_dir>/fold0/train --output_dir OUT --bundle_dir
bundles/mbnas_spleen`` exports a retrained MB-NAS network: the run's ``settings.json`` records the encoding,
``spatial_dims``, ``patch_size``, ``slice_size``, ``init_channels``, ``act`` and ``norm``. The exporter builds its
configs for a 3D softmax network fed by sliding windows; :func:`export_config` gives them this space's pipeline:

* inference: the retraining's preprocessing (:func:`vnas_monai.data.slices.volume_transforms`: RAS, in-plane resize
  to the run's ``slice_size``, its intensity window, per-channel z-score; no resampling), a 2D network run slice by
  slice over the last axis (MONAI ``SliceInferer`` inside :class:`vnas_monai.engine.PrecisionInferer`, as
  :func:`.workflow.make_inferer`), a 3D one by sliding window; then softmax, ``Invertd`` back to the image's grid,
  argmax and ``SaveImaged``, as exported for every space;
* train: the recipe of :class:`.trial.SliceTrial` with its defaults (the paper's): the cases' slices with
  foreground plus a seeded fraction of the others (:class:`SliceDataset`), the paper's augmentation
  (:func:`.trial.augmentation`), Adam with poly decay per iteration, foreground soft Dice; validation on whole
  volumes through the same inferer, the best mean Dice saved to ``models/model.pt``;
* metadata: the network's input as it is, a 2D ``(H, W)`` slice patch or a 3D patch.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from vnas_monai.data.slices import load_volumes, training_slices
from vnas_monai.spaces.protocol import BundleNetwork

from .trial import SliceTrial, _Samples

__all__ = ["BUNDLE", "RECIPE", "SliceDataset", "export_config", "network_def"]

#: the recipe of the exported train.json: the trial's defaults, the paper's (batch 32, Adam 1e-3, poly 0.9, 50 epochs)
RECIPE = {f.name: f.default for f in dataclasses.fields(SliceTrial) if f.default is not dataclasses.MISSING}
_IMPORTS = ["$import vnas_monai.data.slices", "$import vnas_monai.spaces.mbnas.trial",
            "$import vnas_monai.spaces.mbnas.exported"]


def network_def(architecture: str = "@architecture") -> OrderedDict:
    """The ``network_def`` of a bundle config: :class:`.network.MBNASNet` of ``architecture`` (an encoding, its dict
    or the path of its JSON file), shaped by the bundle keys ``spatial_dims`` (2 or 3), ``in_channels``,
    ``num_classes``, ``init_filters`` (the run's ``init_channels``: the width at full resolution), ``act`` and
    ``norm``."""
    return OrderedDict([("_target_", "vnas_monai.spaces.mbnas.network.MBNASNet"), ("encoding", architecture),
                        ("spatial_dims", "@spatial_dims"), ("in_channels", "@in_channels"),
                        ("out_channels", "@num_classes"), ("init_channels", "@init_filters"), ("act", "@act"),
                        ("norm", "@norm")])


class SliceDataset(_Samples):
    """The MB-NAS training samples of a case list, as an exported ``train#dataset`` (``data`` is the key MONAI
    Label's BundleTrainTask sets): the cases' volumes preprocessed as at inference
    (:func:`vnas_monai.data.slices.load_volumes`), their slices with foreground plus a seeded
    ``background_fraction`` of the others, centre padded / cropped to ``patch_size``
    (:func:`vnas_monai.data.slices.training_slices`; 3 sizes: whole volumes), each sample through ``transform``, as
    in a trial.

    Args:
        data: the training cases, ``{"image", "label"}`` paths.
        in_channels: image channels.
        patch_size: ``(H, W)`` (2D) or ``(H, W, D)`` (3D).
        slice_size: in-plane size the volumes are resized to; ``None``: kept.
        intensity_clip: ``[min, max]`` window before the z-score; ``None``: none.
        background_fraction: of the slices without foreground, the fraction trained on.
        seed: which background slices are kept, and the augmentation's random state.
        transform: the augmentation (:func:`.trial.augmentation`), or ``None``.

    Raises:
        ValueError: no case, no slice, or a case whose channels or grids do not fit (naming the file).
    """

    def __init__(self, data: Sequence[Mapping[str, Any]], in_channels: int = 1, patch_size: Sequence[int] = (128, 128),
                 slice_size: Sequence[int] | None = None, intensity_clip: Sequence[float] | None = None,
                 background_fraction: float = 0.1, seed: int = 0, transform: Any = None) -> None:
        self.cases = [dict(c) for c in data]
        volumes = load_volumes(self.cases, int(in_channels), slice_size, intensity_clip)
        if transform is not None and hasattr(transform, "set_random_state"):
            transform.set_random_state(seed=int(seed) % 2**32)
        super().__init__(training_slices(volumes, tuple(int(s) for s in patch_size), float(background_fraction),
                                         int(seed)), transform)


def _checked(settings: Mapping[str, Any]) -> int:
    """The run's ``spatial_dims``, once the settings the MB-NAS configs need are known to fit it.

    Raises:
        ValueError: naming the key (``spatial_dims``, ``slice_size``, ``flip_axes``, ``spacing``).
    """
    dims = settings.get("spatial_dims")
    if dims not in (2, 3):
        raise ValueError(f"spatial_dims={dims!r} in the MB-NAS training run's settings.json (beside model.pt): it "
                         "must be 2 or 3.")
    if settings.get("preprocessing", "volume_transforms") != "volume_transforms":
        raise ValueError(f"preprocessing={settings['preprocessing']!r} in the MB-NAS training run's settings.json: the "
                         "network was trained on volumes preprocessed otherwise than by "
                         "vnas_monai.data.slices.volume_transforms (e.g. by a benchmark's plan), which the exported "
                         "inference would not reproduce; retrain it with bundles/mbnas_*/train.json to export it.")
    if "slice_size" not in settings:
        raise ValueError("the MB-NAS training run's settings.json (beside model.pt) records no slice_size (the "
                         "in-plane size its volumes were resized to, or null): export the model.pt of an MB-NAS "
                         "retraining (bundles/mbnas_*/train.json).")
    size = settings["slice_size"]
    if size is not None and (not isinstance(size, Sequence) or len(size) != 2
                             or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in size)):
        raise ValueError(f"slice_size={size!r} in the MB-NAS training run's settings.json: it must be 2 positive "
                         "ints or null.")
    bad = [a for a in settings["flip_axes"] if int(a) >= dims]
    if bad:
        raise ValueError(f"flip_axes {list(settings['flip_axes'])}: axis {bad[0]} is not a spatial axis of the "
                         f"{dims}D samples the MB-NAS network trains on (key 'flip_axes').")
    if settings.get("spacing"):
        raise ValueError(f"spacing={settings['spacing']!r}: the MB-NAS network was trained on volumes that are not "
                         "resampled (vnas_monai.data.slices.volume_transforms resizes them in-plane to slice_size "
                         "only); leave --spacing out (or use a source bundle without spacing).")
    return int(dims)


def _slice_inferer(roi: str) -> dict[str, Any]:
    """A MONAI ``SliceInferer`` over the last spatial axis (axial slices) of a 2D network, as
    :func:`.workflow.make_inferer`."""
    return {"_target_": "SliceInferer", "roi_size": roi, "sw_batch_size": "@sw_batch_size", "overlap": "@overlap",
            "spatial_dim": 2}


def _volume_transforms(label: bool) -> str:
    return (f"$vnas_monai.data.slices.volume_transforms(label={label}, slice_size=@slice_size, "
            "intensity_clip=@intensity_clip)")


def export_config(name: str, config: dict, settings: Mapping[str, Any]) -> dict:
    """The exported ``config`` (``"inference"``, ``"train"`` or ``"metadata"``) adapted to MB-NAS (module docstring).

    Raises:
        ValueError: run settings that do not fit an MB-NAS network (:func:`_checked`).
    """
    dims = _checked(settings)
    if name == "metadata":
        return _metadata(config, settings, dims)
    config["imports"] = list(dict.fromkeys(list(config["imports"]) + _IMPORTS))
    config.pop("spacing", None)  # never resampled (volume_transforms): a key here would suggest otherwise
    config["slice_size"] = None if settings["slice_size"] is None else [int(s) for s in settings["slice_size"]]
    if dims == 2:  # make_inferer's slice batch and overlap
        config.update(sw_batch_size=32, overlap=0.0)
    if name == "inference":
        config["preprocessing"]["transforms"] = _volume_transforms(False)
        if dims == 2:
            config["inferer"]["inferer"] = _slice_inferer("@roi_size")
        config["_desc_"] = ("MB-NAS inference: each volume preprocessed as in the retraining (RAS, in-plane resize "
                            "to slice_size, intensity window, z-score), "
                            + ("segmented slice by slice along its last axis (SliceInferer)" if dims == 2
                               else "segmented by sliding window")
                            + ", written on the input's grid; run id 'run'. Set images (file, folder or list) and "
                              "output_dir.")
        return config
    return _train(config, dims)


def _train(config: dict, dims: int) -> dict:
    for key in ("num_samples", "spacing"):
        config.pop(key, None)
    config.update(batch_size=RECIPE["batch_size"], learning_rate=RECIPE["learning_rate"],
                  poly_power=RECIPE["poly_power"], max_epochs=RECIPE["epochs"],
                  background_fraction=RECIPE["background_fraction"])
    config["loss"] = {"_target_": "DiceLoss", "include_background": False, "softmax": True, "to_onehot_y": True,
                      "batch": bool(RECIPE["batch_dice"])}
    config["optimizer"] = {"_target_": "torch.optim.Adam", "params": "$@network.parameters()", "lr": "@learning_rate"}
    config["lr_scheduler"]["power"] = "@poly_power"
    train, validate = config["train"], config["validate"]
    for key in ("preprocessing", "transforms"):  # SliceDataset loads and preprocesses the volumes itself
        train.pop(key, None)
    train["augmentation"] = "$vnas_monai.spaces.mbnas.trial.augmentation(@spatial_dims, @flip_axes)"
    train["dataset"] = {"_target_": "vnas_monai.spaces.mbnas.exported.SliceDataset", "data": "$@splits[0]",
                        "in_channels": "@in_channels", "patch_size": "@roi_size", "slice_size": "@slice_size",
                        "intensity_clip": "@intensity_clip", "background_fraction": "@background_fraction",
                        "seed": "@seed", "transform": "@train#augmentation"}
    # as the trial: a last batch of a few samples would give BatchNorm noisy statistics
    train["dataloader"]["drop_last"] = "$len(@train#dataset) > @batch_size"
    validate["preprocessing"]["transforms"] = _volume_transforms(True)
    if dims == 2:
        validate["inferer"]["inferer"] = _slice_inferer("@infer_roi_size")
    config["_desc_"] = ("Supervised training of the exported MB-NAS network with the paper's recipe (2D slices with "
                        "foreground plus a fraction of the others, Adam + poly decay, foreground soft Dice), "
                        "validated on whole volumes; run id 'run'. Set dataset_dir (MSD layout) or override "
                        "train#dataset#data / validate#dataset#data.")
    return config


def _metadata(meta: dict, settings: Mapping[str, Any], dims: int) -> dict:
    image = meta["network_data_format"]["inputs"]["image"]
    channels, size, clip = int(settings["in_channels"]), settings["slice_size"], settings["intensity_clip"]
    meta["image_classes"] = (
        ("single channel" if channels == 1 else f"{channels} channels of") + f" {image['modality']} intensity, "
        "reoriented to RAS" + (f", resized in-plane to {list(size)}" if size else "")
        + (f", clipped to [{clip[0]}, {clip[1]}]" if clip else "") + ", z-normalised per channel and case")
    patch = " x ".join(str(s) for s in settings["infer_roi_size"])
    meta["description"] += (
        f" The network is 2D: its input is one axial slice ({patch} patch, channels first); the bundle's inference "
        "segments a 3D volume slice by slice along its last axis (MONAI SliceInferer)." if dims == 2 else
        f" The network is 3D: its input is a {patch} patch; the bundle's inference slides it over the volume.")
    return meta


def training_text(settings: Mapping[str, Any]) -> str:
    """The exported README's account of the MB-NAS ``configs/train.json`` (:func:`_train`)."""
    patch, axes = list(settings["roi_size"]), list(settings["flip_axes"])
    samples = "axial slices" if len(patch) == 2 else "whole volumes"
    return (f"`configs/train.json` (run id `run`): MONAI `SupervisedTrainer` with the MB-NAS recipe (Bosma et al., "
            f"§2.3): {samples} centre-fitted to {patch} (the slices with foreground plus "
            f"{RECIPE['background_fraction']:.0%} of the others, `background_fraction`), batch "
            f"{RECIPE['batch_size']}, Adam {RECIPE['learning_rate']:g} with polynomial decay (power "
            f"{RECIPE['poly_power']:g}) per iteration, foreground soft Dice"
            + (" over the batch" if RECIPE["batch_dice"] else "") + ", the paper's augmentation (scaling, "
            f"shifting, rotation, flips along axes {axes}, brightness); validation on whole volumes through the "
            "inference's inferer; the best validation Dice is saved to `models/model.pt`. `dataset_dir` is a "
            "dataset in the MSD layout (`dataset.json`, `imagesTr/`, `labelsTr/`); or override "
            "`train#dataset#data` and `validate#dataset#data` with datalists. The exported weights come from the "
            "MB-NAS pipeline (local search, then retraining of the best encoding).")


#: what the MONAI Label export of an MB-NAS network needs (:class:`vnas_monai.spaces.BundleNetwork`); the divisor is
#: the network's own (``2 ** deepest level`` of its encoding), which the export reads from the built network
BUNDLE = BundleNetwork(
    title="MB-NAS",
    network_def=network_def,
    divisor=1,
    description="MB-NAS (Bosma et al., SPIE 2022): a U-Net-like network whose per-node scaling, block type, kernel "
                "size and skip source were found by local search; retrained on 2D slices (or 3D volumes).",
    references=("Bosma, M.M.A., Dushatskiy, A., Grewal, M., Alderliesten, T., Bosman, P.A.N.: Mixed-Block Neural "
                "Architecture Search for Medical Image Segmentation. SPIE Medical Imaging 2022.",),
    notes=("a 2D network (`spatial_dims` 2) segments a volume slice by slice along its last axis (MONAI "
           "`SliceInferer`, each slice in windows of the patch size); a 3D one by sliding window.",
           "preprocessing as in the retraining (`vnas_monai.data.slices.volume_transforms`): in-plane resize to the "
           "run's `slice_size`, no resampling of the voxel spacing.",
           "`MBNASNet` refuses weights whose tensors are not its own, even under `strict=False`."),
    settings_keys=("spatial_dims", "patch_size", "slice_size", "init_channels", "act", "norm", "preprocessing"),
    adapt_config=export_config,
    training=training_text,
    # the retraining records its stem width as init_channels and its one patch (training and inference) as patch_size
    run_aliases=(("init_filters", "init_channels"), ("roi_size", "patch_size"), ("infer_roi_size", "patch_size")),
)
