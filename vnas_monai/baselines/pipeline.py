"""MONAI data pipelines built from a plan (:mod:`vnas_monai.plan`): the same preprocessing for every method.

Preprocessing (cached): ``LoadImaged`` -> ``EnsureChannelFirstd`` -> ``Orientationd("RAS")`` -> ``Spacingd`` to the
plan's spacing -> intensity normalisation of the plan (CT: clip to the foreground 0.5 / 99.5 percentiles, subtract
the foreground mean, divide by its std; otherwise per-case z-score) -> ``SpatialPadd`` to the patch ->
``FgBgToIndicesd`` (so that the random crops do not rescan the label every step). Training adds
``RandCropByPosNegLabeld`` with the plan's pos/neg ratio and samples per case, ``RandFlipd`` on the plan's safe axes,
and, per recipe, intensity / spatial augmentation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["AugmentedDataset", "preprocessing", "train_augmentation", "make_loader", "eval_dataset"]


def preprocessing(plan: Mapping[str, Any], roi_size: Sequence[int] | None = None, indices: bool = True) -> list:
    """Deterministic transforms (cached) from a plan; ``roi_size`` overrides the plan's patch (a network's own fit)."""
    from monai import transforms as T

    keys = ["image", "label"]
    roi = list(roi_size or plan["patch_size"])
    norm = plan["normalisation"]
    xs: list[Any] = [
        T.LoadImaged(keys, image_only=True),
        T.EnsureChannelFirstd(keys),
        T.Orientationd(keys, axcodes="RAS", labels=None),
        T.Spacingd(keys, pixdim=plan["spacing"], mode=("bilinear", "nearest")),
    ]
    if norm["mode"] == "ct":
        lo, hi = norm["clip"]
        xs += [
            T.ScaleIntensityRanged("image", a_min=lo, a_max=hi, b_min=lo, b_max=hi, clip=True),
            T.NormalizeIntensityd("image", subtrahend=norm["mean"], divisor=norm["std"]),
        ]
    else:
        xs.append(T.NormalizeIntensityd("image"))
    xs += [T.SpatialPadd(keys, spatial_size=roi), T.EnsureTyped(keys, track_meta=True)]
    if indices:
        xs.append(T.FgBgToIndicesd("label", fg_postfix="_fg", bg_postfix="_bg"))
    return xs


def train_augmentation(
    plan: Mapping[str, Any],
    roi_size: Sequence[int] | None = None,
    num_samples: int | None = None,
    intensity: bool = False,
    affine: bool = False,
    flip_prob: float = 0.5,
) -> list:
    """Random transforms of a recipe: pos/neg crops and safe flips from the plan, optional intensity / affine
    augmentation (nnU-Net-like: rotation +-15 deg and scaling 0.85..1.25 with probability 0.2; gaussian noise, scaling
    and contrast of intensities)."""
    from monai import transforms as T

    keys = ["image", "label"]
    roi = list(roi_size or plan["patch_size"])
    xs: list[Any] = []
    if affine:
        xs.append(
            T.RandAffined(
                keys, prob=0.2, rotate_range=[0.26] * 3, scale_range=[0.15] * 3, mode=("bilinear", "nearest"),
                padding_mode="zeros",
            )
        )
    xs.append(
        T.RandCropByPosNegLabeld(
            keys, label_key="label", spatial_size=roi, pos=plan["foreground"]["pos"], neg=plan["foreground"]["neg"],
            num_samples=int(num_samples or plan["num_samples"]), fg_indices_key="label_fg", bg_indices_key="label_bg",
            allow_smaller=True,
        )
    )
    xs += [T.RandFlipd(keys, prob=flip_prob, spatial_axis=a) for a in plan["flip_axes"]]
    if intensity:
        xs += [
            T.RandGaussianNoised("image", prob=0.1, std=0.1),
            T.RandScaleIntensityd("image", factors=0.25, prob=0.15),
            T.RandAdjustContrastd("image", prob=0.15, gamma=(0.7, 1.5)),
        ]
    xs.append(T.SelectItemsd(keys))
    return xs


def _cached(cases: Sequence[Mapping[str, Any]], transforms: list) -> Any:
    from monai.data import CacheDataset

    data = [{"image": c["image"], "label": c["label"]} for c in cases]
    return CacheDataset(data, transforms, cache_rate=1.0, num_workers=0, progress=False, copy_cache=False)


class AugmentedDataset:
    """A cached dataset followed by random transforms (MONAI's ``CacheDataset`` applies its random transforms too, but
    only to what follows the first random one; keeping them apart makes the seeded random part explicit)."""

    def __init__(self, cached: Any, random_part: Any) -> None:
        self.cached, self.random_part = cached, random_part

    def __len__(self) -> int:
        return len(self.cached)

    def __getitem__(self, i: int) -> Any:
        return self.random_part(self.cached[i])


def make_loader(
    cases: Sequence[Mapping[str, Any]],
    plan: Mapping[str, Any],
    roi_size: Sequence[int] | None = None,
    batch_size: int | None = None,
    num_samples: int | None = None,
    seed: int = 0,
    **augment: Any,
) -> Any:
    """Training ``DataLoader`` (shuffled, in-process): the cached preprocessing of ``cases``, then the random
    transforms. Each batch holds ``batch_size * num_samples`` patches: image (B, 1, *roi) float, label (B, 1, *roi).
    """
    import torch
    from monai.data import DataLoader
    from monai.transforms import Compose

    cached = _cached(cases, preprocessing(plan, roi_size))
    random_part = Compose(train_augmentation(plan, roi_size, num_samples, **augment)).set_random_state(seed)
    batch = int(batch_size or plan["batch_size"])
    return DataLoader(AugmentedDataset(cached, random_part), batch_size=batch, shuffle=True, num_workers=0,
                      generator=torch.Generator().manual_seed(seed), drop_last=len(cases) >= 2 * batch)


def eval_transforms(plan: Mapping[str, Any]) -> list:
    """The plan's preprocessing of whole cases (no padding or indices): image (C, *shape) and label (1, *shape) on
    the plan's grid."""
    from monai import transforms as T

    return [x for x in preprocessing(plan, indices=False) if not isinstance(x, T.SpatialPadd)]


def eval_dataset(cases: Sequence[Mapping[str, Any]], plan: Mapping[str, Any]) -> Any:
    """Cached preprocessed held-out cases (:func:`eval_transforms`)."""
    return _cached(cases, eval_transforms(plan))
