"""The documents of an exported bundle: ``configs/metadata.json`` (MONAI model-zoo schema) and ``docs/README.md``.

What they say of the network comes from the encoding (``summary()``, ``layout().code_legend``) and the space's
:class:`vnas_monai.spaces.BundleNetwork` (title, description, references, notes, divisor)."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from typing import Any, Optional

from vnas_monai.spaces import BundleNetwork

__all__ = ["metadata_config", "bundle_readme"]


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("monai", "torch", "numpy", "vnas_monai", "nibabel", "itk", "pytorch-ignite", "fire"):
        try:
            out[name] = version(name).split("+")[0]
        except PackageNotFoundError:
            continue
    return out


def input_description(settings: Mapping[str, Any], modality: str) -> str:
    """The exported inference's preprocessing in words (metadata ``image_classes``, the README's input line) for the
    default pipeline; a space whose ``adapt_config`` changes the preprocessing rewrites ``image_classes``."""
    channels, clip = int(settings["in_channels"]), settings["intensity_clip"]
    steps = [("single channel" if channels == 1 else f"{channels} channels of") + f" {modality} intensity",
             "reoriented to RAS"]
    if settings["spacing"]:
        steps.append(f"resampled to {list(settings['spacing'])} mm")
    if clip:
        steps.append(f"clipped to [{clip[0]}, {clip[1]}]")
    steps.append("z-normalised per case")
    return ", ".join(steps)


def metadata_config(
    settings: Mapping[str, Any],
    source: Mapping[str, Any],
    labels: Mapping[str, str],
    arch: Any,
    network: BundleNetwork,
    version: str,
    name: Optional[str],
    modality: str,
    description: Optional[str],
    metrics: Optional[Mapping[str, Any]],
    changelog: Optional[str],
    task: Optional[str] = None,
    data_source: Optional[str] = None,
) -> dict[str, Any]:
    """configs/metadata.json in the MONAI model-zoo schema; ``arch`` is the exported encoding, ``network`` its space's
    :class:`vnas_monai.spaces.BundleNetwork`, the other fields override the source metadata (``source``)."""
    versions = _versions()
    source_inputs = source.get("network_data_format", {}).get("inputs", {})
    src_image = next(iter(source_inputs.values()), {}) if source_inputs else {}
    ct = modality.upper() == "CT"
    clip = settings["intensity_clip"]
    roi = list(settings["infer_roi_size"])
    meta: dict[str, Any] = {
        "schema": source.get(
            "schema",
            "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/meta_schema_20240725.json",
        ),
        "version": version,
        "changelog": {version: changelog or f"exported by vnas_monai {versions.get('vnas_monai', '')}".strip()},
        "monai_version": versions.get("monai", ""),
        "pytorch_version": versions.get("torch", ""),
        "numpy_version": versions.get("numpy", ""),
        "required_packages_version": {
            k: versions[k] for k in ("vnas_monai", "nibabel", "itk", "pytorch-ignite") if k in versions
        },
        "name": name or source.get("name", f"{network.title} segmentation"),
        "task": task or source.get("task", f"{modality} segmentation of {', '.join(list(labels.values())[1:])}"),
        "description": description
        or (
            f"{source.get('description', network.description or network.title + ' segmentation network.')} "
            f"Architecture ({arch.layout().code_legend}): {arch.summary()}."
        ),
        "authors": source.get("authors", "vnas_monai developers"),
        "copyright": source.get("copyright", "Copyright (c) vnas_monai developers"),
        "data_source": data_source or source.get("data_source", "see docs/README.md"),
        "data_type": source.get("data_type", "nifti"),
        "image_classes": input_description(settings, modality),
        "label_classes": ", ".join(f"{k}: {v}" for k, v in labels.items()),
        "pred_classes": ", ".join(f"{k}: {v}" for k, v in labels.items()),
        "intended_use": source.get("intended_use", "Research only"),
        "references": source.get("references", list(network.references)),
        "network_data_format": {
            "inputs": {
                "image": {
                    "type": "image",
                    "format": "hounsfield" if ct else src_image.get("format", "magnitude"),
                    "modality": modality,
                    "num_channels": int(settings["in_channels"]),
                    "spatial_shape": roi,
                    "dtype": "float32",
                    "value_range": list(clip) if clip else [],
                    "is_patch_data": True,
                    "channel_def": {str(i): "image" for i in range(int(settings["in_channels"]))},
                }
            },
            "outputs": {
                "pred": {
                    "type": "image",
                    "format": "segmentation",
                    "num_channels": len(labels),
                    "spatial_shape": roi,
                    "dtype": "float32",
                    "value_range": [0, 1],
                    "is_patch_data": True,
                    "channel_def": dict(labels),
                }
            },
        },
    }
    if metrics:
        meta["eval_metrics"] = dict(metrics)
    return meta


def _training(settings: Mapping[str, Any]) -> str:
    """The README's account of the default exported train.json (:func:`vnas_monai.export.configs.train_config`)."""
    axes = settings.get("flip_axes", [])
    flips = f"random flips along axes {list(axes)} (`flip_axes`)" if axes else "no flips (`flip_axes` is empty)"
    return f"""`configs/train.json` (run id `run`): MONAI `SupervisedTrainer`, Dice + cross-entropy loss, SGD
(momentum 0.9, weight decay 5e-4) with polynomial learning-rate decay (power 0.9), random {settings['roi_size']}
patches (positive/negative crops, {flips}), validation by sliding window; the best validation Dice is saved to
`models/model.pt`. `dataset_dir` is a dataset in the MSD layout (`dataset.json`, `imagesTr/`, `labelsTr/`) or
the NIH Pancreas-CT download layout; or override `train#dataset#data` and `validate#dataset#data` with datalists.
The exported weights come from the vnas_monai pipeline (architecture search, then retraining of the searched
architecture)."""


def bundle_readme(
    meta: Mapping[str, Any],
    settings: Mapping[str, Any],
    arch: Any,
    network: BundleNetwork,
    data_licence: str,
    bundle_name: str,
) -> str:
    """docs/README.md: the model, data, training, results, use (MONAI tools, MONAI Label) and licence."""
    labels = meta["network_data_format"]["outputs"]["pred"]["channel_def"]
    metrics = meta.get("eval_metrics")
    results = (
        "\n".join(f"- {k}: {v}" for k, v in metrics.items())
        if metrics
        else "No evaluation was recorded for these weights at export time (`--metrics` was not given). "
        "Evaluate them on your own held-out cases before use."
    )
    shape = str([1, settings["in_channels"], *settings["infer_roi_size"]])
    training = network.training(settings) if network.training is not None else _training(settings)
    target = network.network_def("@arch_file")["_target_"]
    notes = "".join("\n" + textwrap.fill(line, 116, initial_indent="- ", subsequent_indent="  ")
                    for line in network.notes)
    onnx = f" \\\n        {network.onnx_overrides}" if network.onnx_overrides else ""
    onnx_note = ", with the overrides the network needs for ONNX" if network.onnx_overrides else ""
    return f"""# {meta['name']}

{meta['description']}

## Model

- Network: `{target}` ({network.title}), architecture in `models/arch.json` ({arch.layout().code_legend}):
  {arch.summary()}; stem width {settings['init_filters']}.
- Input: {meta['image_classes']}.
- Output: {len(labels)} channels, {', '.join(f'{k} = {v}' for k, v in labels.items())}; the saved segmentation holds
  the argmax label value per voxel, in the input image's grid.
- Inference window {settings['infer_roi_size']} (every patch size must be a multiple of {network.divisor}).
- `models/model.pt` is a plain state dict (`torch.load(..., weights_only=True)`).{notes}

## Data

{meta['data_source']}

## Training

{training}

    python -m monai.bundle run --config_file configs/train.json --bundle_root . --dataset_dir /data/my_dataset

## Results

{results}

## Use

Requirements: `pip install vnas_monai` (it brings MONAI {meta['monai_version']} and PyTorch).

    # inference on an image, a folder of images or a list; writes <name>_seg.nii.gz into output_dir
    python -m monai.bundle run --config_file configs/inference.json --bundle_root . \\
        --images /data/case.nii.gz --output_dir ./eval
    # check the network's input/output contract
    python -m monai.bundle verify_net_in_out network_def --meta_file configs/metadata.json \\
        --config_file configs/inference.json
    # TorchScript (traced; scripting is not supported by the network)
    python -m monai.bundle ckpt_export network_def --filepath models/model.ts --ckpt_file models/model.pt \\
        --meta_file configs/metadata.json --config_file configs/inference.json --use_trace True \\
        --input_shape "{shape}"
    # ONNX (pip install onnx): TorchScript-based exporter{onnx_note}
    python -m monai.bundle onnx_export network_def --filepath models/model.onnx --ckpt_file models/model.pt \\
        --meta_file configs/metadata.json --config_file configs/inference.json --use_trace True \\
        --input_shape "{shape}" --converter_kwargs "{{'dynamo': False}}"{onnx}

MONAI Label (0.8.5, `monaibundle` app): copy this folder to `<app>/model/{bundle_name}/` and start the server with
`--conf models {bundle_name} --conf zoo_source local --conf sam2 false` (see vnas_monai docs/monailabel.md).

## Licence

The code and this bundle are released under the Apache License 2.0 (`LICENSE`). The weights were trained on
data with its own terms: {data_licence}

## Reference

{chr(10).join('- ' + r for r in meta['references'])}
"""
