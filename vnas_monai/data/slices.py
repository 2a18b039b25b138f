"""2D training data from 3D volumes: the axial slices of MB-NAS's setting (Bosma et al., "Mixed-Block Neural
Architecture Search for Medical Image Segmentation", SPIE Medical Imaging 2022, §2.3: 2D slices, 128 x 128).

Every volume goes through :func:`volume_transforms` (load, channel first, RAS orientation, an optional in-plane
resize to ``slice_size``, an optional intensity window, per-channel z-score), the same list the MB-NAS inference and
evaluation bundles use, so the network sees the same intensities and in-plane grid in training and at inference.
The volumes of a case list are loaded once per process (:func:`load_volumes` keeps the last few lists in memory, so
the trials that a Dask worker runs one after another on one fold read the files once).

* :func:`training_slices`: the axial slices (last spatial axis) that hold foreground, plus a seeded
  ``background_fraction`` of the others, each centre padded / cropped in-plane to the training patch;
* :func:`pad_to_multiple`: a whole volume padded in-plane (never cropped) to a multiple of the network's divisor, for
  the per-volume validation Dice of a trial.

With ``spatial_dims=3`` :func:`training_slices` gives each whole volume, centre padded / cropped to a 3D patch.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["SliceSet", "Volume", "centre_fit", "load_volumes", "pad_to_multiple", "training_slices",
           "volume_transforms"]

logger = logging.getLogger(__name__)

_CACHE: OrderedDict[tuple, list[Volume]] = OrderedDict()
#: case lists whose volumes stay in memory per process
CACHE_SIZE = 4


@dataclass(frozen=True)
class Volume:
    """One preprocessed case: ``image`` (C, H, W, D) float32, ``label`` (H, W, D) uint8, its ``name`` and its voxel
    ``spacing`` in mm on that grid."""

    image: np.ndarray
    label: np.ndarray
    name: str
    spacing: tuple = (1.0, 1.0, 1.0)


@dataclass(frozen=True)
class SliceSet:
    """Training samples: ``images`` (N, C, *patch) float32, ``labels`` (N, 1, *patch) uint8 and the index of each
    sample's volume in ``cases``."""

    images: torch.Tensor
    labels: torch.Tensor
    case_index: torch.Tensor

    def __len__(self) -> int:
        return int(self.images.shape[0])


def _sizes(value: Any, n: int, key: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    sizes = [value] * n if isinstance(value, int) else list(value)
    if len(sizes) != n or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in sizes):
        raise ValueError(f"{key} must be {n} positive ints (or one), got {value!r}.")
    return tuple(int(s) for s in sizes)


def volume_transforms(label: bool = True, slice_size: Sequence[int] | None = None,
                      intensity_clip: Sequence[float] | None = None, resize_label: bool = True) -> list:
    """The MONAI preprocessing of one volume (the module docstring), as a list of dictionary transforms.

    Args:
        label: also load ``"label"``.
        slice_size: in-plane size ``(H, W)`` every volume is resized to (the slices' grid); ``None``: keep it.
        intensity_clip: ``[min, max]`` window before the z-score (CT); ``None``: none (MRI).
        resize_label: reorient and resize the label with the image (nearest); ``False`` keeps it on the file's grid
            (the evaluation, whose prediction is inverted back to that grid).
    """
    from monai.transforms import EnsureChannelFirstd, EnsureTyped, NormalizeIntensityd, Orientationd, Resized

    from vnas_monai.data.transforms import CheckedLoadImaged, ClipIntensityd

    keys = ["image", "label"] if label else ["image"]
    spatial = keys if resize_label else ["image"]
    size = _sizes(slice_size, 2, "slice_size")
    out: list = [CheckedLoadImaged(keys=keys, image_only=True), EnsureChannelFirstd(keys=keys),
                 Orientationd(keys=spatial, axcodes="RAS", labels=None)]
    if size is not None:
        out.append(Resized(keys=spatial, spatial_size=(*size, -1), mode=["area", "nearest"][:len(spatial)]))
    if intensity_clip is not None:
        out.append(ClipIntensityd(keys="image", clip=list(intensity_clip)))
    out += [NormalizeIntensityd(keys="image", channel_wise=True), EnsureTyped(keys=keys)]
    return out


def _case_name(path: Any) -> str:
    from vnas_monai.bundle.datalists import case_name

    return case_name(str(path))


def load_volumes(cases: Sequence[Mapping[str, Any]], in_channels: int | None, slice_size: Sequence[int] | None = None,
                 intensity_clip: Sequence[float] | None = None, transforms: Any = None,
                 transforms_key: str | None = None) -> list[Volume]:
    """The preprocessed volumes of ``cases`` (``{"image", "label"}`` paths), cached per process.

    Args:
        cases: ``{"image", "label"}`` paths.
        in_channels: the image channels every case must have; ``None``: not checked.
        slice_size, intensity_clip: of :func:`volume_transforms`.
        transforms: ``transforms()`` -> a MONAI dictionary-transform chain that replaces :func:`volume_transforms`
            (``slice_size`` and ``intensity_clip`` then unused), e.g. a benchmark plan's preprocessing; called only
            when the cases are not cached.
        transforms_key: what identifies ``transforms`` in the cache (required with it).

    Raises:
        ValueError: an image with another number of channels than ``in_channels``, or a label whose grid differs
            from its image's (both name the file).
    """
    from monai.transforms import Compose

    if transforms is not None and transforms_key is None:
        raise ValueError("load_volumes: transforms needs a transforms_key that identifies it in the cache.")
    key = (tuple((str(c["image"]), str(c["label"])) for c in cases), in_channels,
           None if slice_size is None else tuple(slice_size), None if intensity_clip is None else tuple(intensity_clip),
           transforms_key)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    load = Compose(transforms() if transforms is not None else volume_transforms(True, slice_size, intensity_clip))
    volumes = []
    for case in cases:
        data = load({"image": case["image"], "label": case["label"]})
        image, label = data["image"], data["label"]
        if in_channels is not None and image.shape[0] != in_channels:
            raise ValueError(f"{case['image']} has {image.shape[0]} channel(s) but in_channels={in_channels} "
                             "(bundle key 'in_channels').")
        if tuple(image.shape[1:]) != tuple(label.shape[1:]):
            raise ValueError(f"{case['label']} has grid {tuple(label.shape[1:])}, its image {case['image']} "
                             f"{tuple(image.shape[1:])}.")
        volumes.append(Volume(np.ascontiguousarray(image.numpy(), dtype=np.float32),
                              np.ascontiguousarray(label.numpy()[0].round(), dtype=np.uint8),
                              _case_name(case["image"]),
                              tuple(float(v) for v in np.asarray(getattr(image, "pixdim", (1.0,) * 3))[:3])))
    _CACHE[key] = volumes
    while len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return volumes


def centre_fit(array: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """``array`` (..., *spatial) centre padded with zeros / cropped to ``size`` on its last ``len(size)`` axes."""
    lead = array.ndim - len(size)
    out = array
    for axis, target in enumerate(size, start=lead):
        have = out.shape[axis]
        if have > target:
            start = (have - target) // 2
            out = np.take(out, range(start, start + target), axis=axis)
        elif have < target:
            pad = [(0, 0)] * out.ndim
            pad[axis] = ((target - have) // 2, target - have - (target - have) // 2)
            out = np.pad(out, pad)
    return out


def pad_to_multiple(volume: Volume, divisor: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(image (D, C, H', W'), label (D, H', W'))``: a volume's axial slices as a batch, padded in-plane (never
    cropped) to multiples of ``divisor``."""
    h, w = volume.image.shape[1:3]
    size = (-(-h // divisor) * divisor, -(-w // divisor) * divisor)
    image = centre_fit(np.moveaxis(volume.image, -1, 0), size)  # (D, C, H, W)
    label = centre_fit(np.moveaxis(volume.label, -1, 0), size)  # (D, H, W)
    return torch.from_numpy(np.ascontiguousarray(image)), torch.from_numpy(np.ascontiguousarray(label))


def training_slices(volumes: Sequence[Volume], patch_size: Sequence[int], background_fraction: float = 0.1,
                    seed: int = 0) -> SliceSet:
    """The training samples of ``volumes`` (module docstring): 2 patch sizes give axial slices, 3 whole volumes.

    Args:
        volumes: from :func:`load_volumes`.
        patch_size: ``(H, W)`` (2D) or ``(H, W, D)`` (3D).
        background_fraction: of the slices without foreground, the fraction kept (seeded; at least one per volume
            when the fraction is positive).
        seed: which background slices are kept.

    Raises:
        ValueError: a bad patch size or fraction, no volume, or no slice at all.
    """
    if not 0.0 <= float(background_fraction) <= 1.0:
        raise ValueError(f"background_fraction must be in [0, 1], got {background_fraction!r}.")
    if not volumes:
        raise ValueError("no training volume: the case list is empty.")
    size = tuple(patch_size)
    if len(size) == 3:
        images = [centre_fit(v.image, size) for v in volumes]
        labels = [centre_fit(v.label, size)[None] for v in volumes]
        index = list(range(len(volumes)))
    elif len(size) == 2:
        rng = np.random.default_rng(seed)
        images, labels, index = [], [], []
        for i, v in enumerate(volumes):
            fg = v.label.reshape(-1, v.label.shape[-1]).any(0)
            bg = np.flatnonzero(~fg)
            keep = int(round(len(bg) * float(background_fraction)))
            if background_fraction > 0 and len(bg):
                keep = max(1, keep)
            chosen = np.sort(np.concatenate([np.flatnonzero(fg), rng.choice(bg, keep, replace=False)]))
            for z in chosen.astype(int):
                images.append(centre_fit(v.image[..., z], size))
                labels.append(centre_fit(v.label[..., z], size)[None])
                index.append(i)
    else:
        raise ValueError(f"patch_size must be 2 sizes (2D slices) or 3 (3D volumes), got {list(size)}.")
    if not images:
        raise ValueError("no training slice: no volume has foreground and background_fraction is 0.")
    return SliceSet(torch.from_numpy(np.stack(images)).float(), torch.from_numpy(np.stack(labels)),
                    torch.tensor(index, dtype=torch.long))
