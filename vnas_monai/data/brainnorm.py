"""Brain-wise normalisation of multimodal MRI (Wang, BraTS 2019, §2.2, Eq. 1-2; ξ = 100, λ = 0.1 in §3.3).

For each modality (channel) ``c`` with μ_c, σ_c the mean and standard deviation of the *non-zero* voxels of *all*
training volumes (:func:`fit_brain_stats`), a volume ``A`` becomes, in this order::

    Eq. 1:  Â = (A - μ) / σ   where A != 0,   0 elsewhere
    Eq. 2:  Ã = ξ ((Â - Â_min) / (Â_max - Â_min) + λ)   where A != 0,   0 elsewhere

with Â_min, Â_max the extremes of Â over the brain (the voxels where A != 0) of *this* volume. The brain therefore
lies in [ξλ, ξ(1 + λ)] = [10, 110] and the background stays exactly 0, so the two remain apart (the role of λ).

Note: Eq. 1 is an increasing affine map, so the per-volume min-max of Eq. 2 cancels μ and σ exactly
(Ã = ξ((A - A_min)/(A_max - A_min) + λ) mathematically); they still enter the floating-point computation as in the
paper, and a brain of one constant value (Â_max = Â_min) maps to ξλ.

Shapes: the transform takes channel-first images ``(C, *spatial)``; ``mean`` / ``std`` hold one value per channel
(or one value for all).
"""

from __future__ import annotations

import math
import os
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

__all__ = ["BrainWiseNormalized", "brain_wise_normalize", "fit_brain_stats", "read_channels"]


def read_channels(image: str | os.PathLike | Sequence[str | os.PathLike], where: str = "image") -> list[np.ndarray]:
    """The channels of one datalist image, as float arrays: a list of paths (one file per modality, the BraTS
    layout), or one path of a 3D file (one channel) or a 4D file with the channels last (the MSD layout).

    Raises:
        FileNotFoundError / ValueError: a missing or unreadable file, named.
    """
    import nibabel as nib

    paths = [image] if isinstance(image, (str, os.PathLike)) else list(image)
    channels: list[np.ndarray] = []
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{where}: image file {path} does not exist.")
        try:
            data = np.asanyarray(nib.load(str(path)).dataobj)
        except Exception as e:
            raise ValueError(f"{where}: cannot read image file {path}: {type(e).__name__}: {e}") from None
        if data.ndim == 4:
            channels.extend(data[..., c] for c in range(data.shape[-1]))
        elif data.ndim == 3:
            channels.append(data)
        else:
            raise ValueError(f"{where}: {path} has shape {data.shape}; expected a 3D volume or a 4D (x, y, z, C) one.")
    return channels


def fit_brain_stats(datalist: Sequence[Mapping[str, Any]], image_key: str = "image") -> dict[str, Any]:
    """μ and σ per channel over the non-zero voxels of every image of ``datalist`` (Eq. 1), streamed case by case.

    The per-case count, mean and sum of squared deviations are merged with Chan et al.'s pairwise update in float64,
    so one volume is in memory at a time and the result does not lose digits over hundreds of volumes.

    Args:
        datalist: cases ``{image_key: path or [paths], ...}`` (e.g. the S_train datalist).
        image_key: the key of the images.

    Returns:
        ``{"mean": [...], "std": [...], "count": [...], "num_cases": n}`` (one value per channel; population std).

    Raises:
        ValueError: an empty datalist, a case without ``image_key``, cases with different channel counts, or a
            channel without any non-zero voxel.
    """
    if not datalist:
        raise ValueError("fit_brain_stats: the datalist is empty.")
    count: np.ndarray | None = None
    mean = m2 = None
    for i, case in enumerate(datalist):
        if not isinstance(case, Mapping) or image_key not in case:
            raise ValueError(f"fit_brain_stats: case {i} has no {image_key!r} key: {case!r:.200}")
        where = f"case {case.get('case', i)!r}"
        chans = read_channels(case[image_key], where)
        if count is None:
            count, mean, m2 = (np.zeros(len(chans)) for _ in range(3))
        elif len(chans) != len(count):
            raise ValueError(f"fit_brain_stats: {where} has {len(chans)} channels, the first case {len(count)}.")
        for c, x in enumerate(chans):
            v = np.asarray(x, dtype=np.float64)
            v = v[v != 0]
            if v.size == 0:
                continue
            n_b, mean_b = float(v.size), float(v.mean())
            m2_b = float(((v - mean_b) ** 2).sum())
            n_a = count[c]
            delta = mean_b - mean[c]
            total = n_a + n_b
            mean[c] += delta * n_b / total
            m2[c] += m2_b + delta * delta * n_a * n_b / total
            count[c] = total
    empty = [c for c in range(len(count)) if count[c] == 0]
    if empty:
        raise ValueError(f"fit_brain_stats: channel(s) {empty} have no non-zero voxel in any of the {len(datalist)} "
                         f"cases: not skull-stripped MRI with a zero background?")
    std = [math.sqrt(m2[c] / count[c]) for c in range(len(count))]
    return {"mean": [float(m) for m in mean], "std": std, "count": [int(n) for n in count],
            "num_cases": len(datalist)}


def _per_channel(values: float | Sequence[float], channels: int, name: str) -> torch.Tensor:
    vals = [float(values)] * channels if isinstance(values, (int, float)) else [float(v) for v in values]
    if len(vals) == 1 and channels > 1:
        vals = vals * channels
    if len(vals) != channels or not all(math.isfinite(v) for v in vals):
        raise ValueError(f"{name} must be one finite value or one per channel ({channels}), got {values!r}.")
    return torch.tensor(vals, dtype=torch.float64)


def brain_wise_normalize(image: Any, mean: float | Sequence[float], std: float | Sequence[float],
                         xi: float = 100.0, lam: float = 0.1, where: str = "image") -> torch.Tensor:
    """Eq. 1 then Eq. 2 on a channel-first image ``(C, *spatial)``; float32 out, background (A == 0) exactly 0.

    Raises:
        ValueError: not channel first with >= 1 spatial axis, a mean / std of the wrong length, or a std <= 0.
    """
    a = torch.as_tensor(image)
    a = a.as_tensor() if hasattr(a, "as_tensor") else a
    if a.ndim < 2:
        raise ValueError(f"{where}: expected a channel-first image (C, *spatial), got shape {tuple(a.shape)}.")
    channels = int(a.shape[0])
    mu, sigma = _per_channel(mean, channels, f"{where}: mean"), _per_channel(std, channels, f"{where}: std")
    if bool((sigma <= 0).any()):
        raise ValueError(f"{where}: std must be > 0 per channel, got {sigma.tolist()}.")
    out = torch.zeros(a.shape, dtype=torch.float32, device=a.device)
    for c in range(channels):
        x = a[c].double()
        brain = x != 0
        if not bool(brain.any()):
            continue  # an empty channel stays all background
        z = (x[brain] - float(mu[c])) / float(sigma[c])  # Eq. 1
        lo, hi = z.min(), z.max()
        frac = (z - lo) / (hi - lo) if bool(hi > lo) else torch.zeros_like(z)
        out[c][brain] = (float(xi) * (frac + float(lam))).float()  # Eq. 2
    return out


class BrainWiseNormalized(MapTransform):
    """MONAI dictionary transform: brain-wise normalisation (Eq. 1-2) of each key's ``(C, *spatial)`` image.

    Args:
        keys: image keys.
        mean: μ per channel (or one for all), e.g. ``fit_brain_stats(...)["mean"]``.
        std: σ per channel (or one for all).
        xi: ξ (100 in the paper).
        lam: λ (0.1 in the paper).
        allow_missing_keys: skip missing keys.
    """

    def __init__(self, keys: KeysCollection, mean: float | Sequence[float], std: float | Sequence[float],
                 xi: float = 100.0, lam: float = 0.1, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        for name, v in (("xi", xi), ("lam", lam)):
            if not math.isfinite(float(v)):
                raise ValueError(f"BrainWiseNormalized: {name} must be finite, got {v!r}.")
        if float(xi) <= 0 or float(lam) <= 0:
            raise ValueError(f"BrainWiseNormalized: xi and lam must be > 0 (the brain must stay apart from the zero "
                             f"background), got xi={xi}, lam={lam}.")
        self.mean, self.std, self.xi, self.lam = mean, std, float(xi), float(lam)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        from monai.data import MetaTensor

        d = dict(data)
        for key in self.key_iterator(d):
            out = brain_wise_normalize(d[key], self.mean, self.std, self.xi, self.lam, where=f"key {key!r}")
            if isinstance(d[key], MetaTensor):
                out = MetaTensor(out, meta=d[key].meta, applied_operations=d[key].applied_operations)
            elif isinstance(d[key], np.ndarray):
                out = out.numpy()
            d[key] = out
        return d
