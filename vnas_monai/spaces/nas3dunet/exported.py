"""The NAS-3D-U-Net side of the MONAI Label export (:func:`vnas_monai.export.export_bundle` through the space's
:class:`vnas_monai.spaces.BundleNetwork`) and the source bundle's ``metadata.json`` (Wang, BraTS 2019).

The exporter builds its configs for a softmax network; :func:`export_config` gives them this space's pipeline:
brain-wise normalisation with the training run's statistics (Eq. 1-2), one sigmoid channel per region, the regions
painted back as the layout's labels (:func:`output_labels`: the values and names of the written label map, the
metadata's ``channel_def`` that MONAI Label reads), and for retraining the region Dice loss (Eq. 3).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

__all__ = ["bundle_metadata", "export_config", "output_labels"]

#: the names of each layout's label values (:mod:`vnas_monai.data.regions`)
LABEL_NAMES = {
    "brats": {1: "necrotic and non-enhancing tumour core", 2: "peritumoral edema", 4: "enhancing tumour"},
    "msd": {1: "edema", 2: "non-enhancing tumour", 3: "enhancing tumour"},
}


def output_labels(regions: Any) -> dict[str, str]:
    """``{"0": "background", "<label>": name, ...}`` of the label map the inference writes for ``regions`` (a
    :class:`vnas_monai.data.regions.RegionLayout`)."""
    names = LABEL_NAMES.get(regions.name, {})
    out = {"0": "background"}
    for region, value in sorted(regions.paint, key=lambda p: p[1]):
        out[str(value)] = names.get(value, region)
    return out


def _regions(settings: Mapping[str, Any]) -> Any:
    from vnas_monai.data.regions import get_layout

    return get_layout(settings["layout"], len(settings["region_names"]))


def _literal_stats(settings: Mapping[str, Any]) -> tuple[list[float], list[float]]:
    stats = settings.get("brain_stats")
    if not isinstance(stats, Mapping):
        raise ValueError("the training run's settings.json has no brain_stats: export the model.pt of a NAS-3D-U-Net "
                         "training run (bundles/nas3dunet_brats/train.json).")
    return [float(v) for v in stats["mean"]], [float(v) for v in stats["std"]]


def export_config(name: str, config: dict, settings: Mapping[str, Any]) -> dict:
    """The exported ``config`` (``"inference"``, ``"train"`` or ``"metadata"``) adapted to NAS-3D-U-Net."""
    from .bundles import augmentation, load_transforms, to_regions

    if name == "metadata":
        return _metadata(config, settings)
    mean, std = _literal_stats(settings)
    config["imports"] = list(dict.fromkeys(list(config["imports"]) + [
        "$import numpy", "$import vnas_monai.data.transforms", "$import vnas_monai.data.regions",
        "$import vnas_monai.data.brainnorm", "$import vnas_monai.spaces.nas3dunet.pipeline"]))
    config["layout"] = settings["layout"]
    config["num_regions"] = len(settings["region_names"])
    config["regions"] = "$vnas_monai.data.regions.get_layout(@layout, @num_regions)"
    config["threshold"] = 0.5
    if name == "inference":
        config["preprocessing"]["transforms"] = load_transforms(False, mean, std)
        save = [{**t, "output_name_formatter": "$vnas_monai.spaces.nas3dunet.pipeline.brain_case_formatter"}
                for t in config["postprocessing"]["transforms"] if t["_target_"] == "SaveImaged"]
        config["postprocessing"]["transforms"] = [
            {"_target_": "Activationsd", "keys": "pred", "sigmoid": True},
            {"_target_": "Invertd", "keys": "pred", "transform": "@preprocessing", "orig_keys": "image",
             "nearest_interp": False, "to_tensor": True},
            {"_target_": "vnas_monai.data.regions.RegionsToLabeld", "keys": "pred", "layout": "@regions",
             "threshold": "@threshold"}] + save
        config["datalist"] = "$vnas_monai.spaces.nas3dunet.pipeline.inference_cases(@images, layout=@layout)"
        config["_desc_"] = (config["_desc_"] + " Sigmoid regions written as the layout's labels; images: a 4D NIfTI, "
                            "a folder (BraTS case folders with layout 'brats') or a list of the files of one case.")
        return config
    train, validate = config["train"], config["validate"]
    pad = [t for t in train["preprocessing"] if t["_target_"] == "SpatialPadd"]
    train["preprocessing"] = load_transforms(True, mean, std)
    train["augmentation"] = pad + augmentation()[1:]
    validate["preprocessing"]["transforms"] = load_transforms(True, mean, std) + [to_regions()]
    sigmoid = {"_target_": "Compose", "transforms": [
        {"_target_": "Activationsd", "keys": "pred", "sigmoid": True},
        {"_target_": "AsDiscreted", "keys": "pred", "threshold": "@threshold"}]}
    train["postprocessing"] = copy.deepcopy(sigmoid)
    validate["postprocessing"] = sigmoid
    validate["key_metric"]["val_mean_dice"]["include_background"] = True
    config["loss"] = {"_target_": "vnas_monai.spaces.nas3dunet.RegionDiceLoss"}
    config["optimizer"] = {"_target_": "torch.optim.Adam", "params": "$@network.parameters()",
                           "lr": "@learning_rate", "weight_decay": 1e-5}
    config["splits"] = ("$vnas_monai.data.split_train_val(vnas_monai.spaces.nas3dunet.pipeline.brain_datalist("
                        "@dataset_dir, @layout), @val_fraction, @seed)")
    config["num_samples"] = 1
    config["_desc_"] = ("Supervised training of the exported NAS-3D-U-Net genotype (Adam + poly decay, region Dice "
                        "loss on sigmoid outputs); run id 'run'. Set dataset_dir (layout: brats, msd or generic) or "
                        "override train#dataset#data / validate#dataset#data.")
    return config


def _metadata(meta: dict, settings: Mapping[str, Any]) -> dict:
    regions = _regions(settings)
    meta["image_classes"] = (f"{settings['in_channels']} MRI modalities, brain-wise normalised (Wang, BraTS 2019, "
                             "Eq. 1-2, with the training cases' statistics); background 0")
    meta["network_data_format"]["inputs"]["image"]["format"] = "magnitude"
    meta["network_data_format"]["inputs"]["image"]["value_range"] = []
    pred = meta["network_data_format"]["outputs"]["pred"]
    pred["num_channels"] = len(regions)
    pred["region_def"] = {str(i): n for i, n in enumerate(regions.names)}
    return meta


def bundle_metadata() -> dict:
    """``bundles/nas3dunet_brats/metadata.json`` (MONAI model-zoo schema)."""
    return {
        "schema": "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/"
                  "meta_schema_20240725.json",
        "version": "0.1.0",
        "changelog": {"0.1.0": "NAS-3D-U-Net search, retrain, inference and evaluation bundles for BraTS / MSD Task01"},
        "name": "NAS-3D-U-Net brain tumour segmentation",
        "task": "Segmentation of the enhancing tumour, tumour core and whole tumour in multimodal brain MRI",
        "description": "NAS-3D-U-Net (Wang, BraTS 2019): differentiable search of the operations inside the U-Net's "
                       "downward and upward cells (hybrid modules), then retraining of the searched genotype; one "
                       "sigmoid output per tumour region.",
        "authors": "vnas_monai developers",
        "copyright": "Copyright (c) vnas_monai developers",
        "data_source": "BraTS 2019-2021 training data, or MSD Task01_BrainTumour (4 MRI modalities)",
        "data_type": "nifti",
        "image_classes": "4 MRI modalities (t1, t1ce, t2, flair), brain-wise normalised; background 0",
        "label_classes": "BraTS: 1 necrotic / non-enhancing core, 2 edema, 4 enhancing; MSD: 1 edema, "
                         "2 non-enhancing tumour, 3 enhancing tumour",
        "pred_classes": "ET (enhancing tumour), TC (tumour core), WT (whole tumour), written back as the labels",
        "intended_use": "Research only",
        "references": ["Wang, Y., et al.: Neural Architecture Search for Gliomas Segmentation on Multimodal Magnetic "
                       "Resonance Imaging. BraTS 2019 (arXiv:2005.06338)."],
        "network_data_format": {
            "inputs": {"image": {"type": "image", "format": "magnitude", "modality": "MR", "num_channels": 4,
                                 "spatial_shape": [64, 64, 64], "dtype": "float32", "value_range": [],
                                 "is_patch_data": True,
                                 "channel_def": {"0": "t1", "1": "t1ce", "2": "t2", "3": "flair"}}},
            "outputs": {"pred": {"type": "image", "format": "segmentation", "num_channels": 3,
                                 "spatial_shape": [64, 64, 64], "dtype": "float32", "value_range": [0, 1],
                                 "is_patch_data": True,
                                 "channel_def": {"0": "background", "1": LABEL_NAMES["brats"][1],
                                                 "2": LABEL_NAMES["brats"][2], "4": LABEL_NAMES["brats"][4]}}},
        },
    }
