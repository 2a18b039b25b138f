"""The "auto-fitting" patching strategy (Wang, BraTS 2019, §2.3 and Fig. 2; stitching by averaging, §3.3).

The brain's bounding box ("brain cube", the voxels that are non-zero in any modality) is covered with the fewest
patches, placed symmetrically, per axis. With ``l_b`` the box's length and ``l_p`` the patch's on one axis::

    n_p   = ceil(l_b / l_p)                                   patches on that axis
    l_o   = floor((n_p l_p - l_b) / (n_p - 1))                overlap of neighbouring patches (0 when n_p = 1)
    start = -floor((n_p l_p - l_o (n_p - 1) - l_b) / 2)       first patch, relative to the box's start
    step  = l_p - l_o

e.g. ``l_b = 150, l_p = 128``: 2 patches at box + 0 and box + 22; ``l_b = 100 <= 128``: one patch centred on the box
at box - 14. The patches of the three axes are combined as a grid. A patch reaching outside the volume is padded
with zeros (:func:`extract_patches`); :func:`stitch_patches` puts predictions back and averages where patches
overlap (voxels no patch covers stay 0: they are background outside the brain cube).

Shapes: images and predictions are channel first, ``(C, *spatial)``; a stack of patches is ``(N, C, *patch)``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

__all__ = ["PATCHING", "AutoFitInferer", "autofit_inference", "autofit_starts", "axis_starts", "brain_box",
           "extract_patches", "patch_inferer", "stitch_patches"]

#: how a volume is cut into network patches at inference: the paper's auto-fitting patches, or MONAI's Gaussian
#: sliding window
PATCHING = ("autofit", "sliding_window")


def _as_tensor(x: Any) -> torch.Tensor:
    t = torch.as_tensor(x)
    return t.as_tensor() if hasattr(t, "as_tensor") else t


def brain_box(image: Any) -> list[tuple[int, int]]:
    """The brain cube of a channel-first image ``(C, *spatial)``: per spatial axis ``(start, stop)`` (stop
    exclusive) of the voxels non-zero in any channel; the whole volume when no voxel is."""
    t = _as_tensor(image)
    if t.ndim < 2:
        raise ValueError(f"brain_box: expected a channel-first image (C, *spatial), got shape {tuple(t.shape)}.")
    mask = (t != 0).any(0)
    if not bool(mask.any()):
        return [(0, int(n)) for n in mask.shape]
    box = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hit = torch.nonzero(mask.any(other) if other else mask)[:, 0]
        box.append((int(hit[0]), int(hit[-1]) + 1))
    return box


def axis_starts(box_start: int, extent: int, patch: int) -> list[int]:
    """The starts of the fewest symmetric patches of length ``patch`` covering ``[box_start, box_start + extent)``
    on one axis (module docstring; a start may be negative or the patch end past the volume: padding)."""
    extent, patch = int(extent), int(patch)
    if patch < 1 or extent < 0:
        raise ValueError(f"axis_starts: patch must be >= 1 and extent >= 0, got patch={patch}, extent={extent}.")
    n = max(1, math.ceil(extent / patch))
    overlap = 0 if n == 1 else (n * patch - extent) // (n - 1)
    first = -((n * patch - overlap * (n - 1) - extent) // 2)
    step = patch - overlap
    return [int(box_start) + first + i * step for i in range(n)]


def autofit_starts(box: Sequence[tuple[int, int]], patch_size: Sequence[int]) -> list[tuple[int, ...]]:
    """Every patch's start (one int per axis) covering ``box`` (as :func:`brain_box` returns), as a grid."""
    if len(box) != len(patch_size):
        raise ValueError(f"autofit_starts: box has {len(box)} axes, patch_size {len(patch_size)} ({list(patch_size)}).")
    per_axis = [axis_starts(lo, hi - lo, p) for (lo, hi), p in zip(box, patch_size)]
    return [tuple(s) for s in itertools.product(*per_axis)]


def _overlap(start: int, patch: int, size: int) -> tuple[slice, slice]:
    """(slice in the volume, slice in the patch) of the part of ``[start, start + patch)`` inside ``[0, size)``."""
    lo, hi = max(start, 0), min(start + patch, size)
    return slice(lo, max(hi, lo)), slice(lo - start, max(hi, lo) - start)


def extract_patches(image: Any, starts: Sequence[Sequence[int]], patch_size: Sequence[int]) -> torch.Tensor:
    """Patches ``(N, C, *patch_size)`` of ``image`` ``(C, *spatial)`` at ``starts``, zero outside the volume."""
    t = _as_tensor(image)
    spatial = t.shape[1:]
    if len(spatial) != len(patch_size):
        raise ValueError(f"extract_patches: image has {len(spatial)} spatial axes, patch_size {list(patch_size)}.")
    out = torch.zeros((len(starts), t.shape[0], *[int(p) for p in patch_size]), dtype=t.dtype, device=t.device)
    for i, start in enumerate(starts):
        cuts = [_overlap(s, p, n) for s, p, n in zip(start, patch_size, spatial)]
        out[(i, slice(None), *[c[1] for c in cuts])] = t[(slice(None), *[c[0] for c in cuts])]
    return out


def stitch_patches(patches: Any, starts: Sequence[Sequence[int]], spatial_shape: Sequence[int]) -> torch.Tensor:
    """The inverse of :func:`extract_patches`: ``(N, C, *patch)`` predictions -> ``(C, *spatial_shape)`` float32,
    the mean of the patches over each voxel they cover (§3.3), 0 where none does; padding is dropped."""
    p = _as_tensor(patches)
    if p.ndim != 2 + len(spatial_shape) or p.shape[0] != len(starts):
        raise ValueError(f"stitch_patches: expected {len(starts)} patches (N, C, *patch) for a {len(spatial_shape)}D "
                         f"volume, got shape {tuple(p.shape)}.")
    total = torch.zeros((p.shape[1], *[int(n) for n in spatial_shape]), dtype=torch.float32, device=p.device)
    hits = torch.zeros([int(n) for n in spatial_shape], dtype=torch.float32, device=p.device)
    for i, start in enumerate(starts):
        cuts = [_overlap(s, n_p, n) for s, n_p, n in zip(start, p.shape[2:], spatial_shape)]
        vol = tuple(c[0] for c in cuts)
        total[(slice(None), *vol)] += p[(i, slice(None), *[c[1] for c in cuts])].float()
        hits[vol] += 1
    return torch.where(hits > 0, total / hits.clamp(min=1), total)


def autofit_inference(image: Any, predictor: Callable[[torch.Tensor], torch.Tensor], patch_size: Sequence[int],
                      batch_size: int = 1) -> torch.Tensor:
    """Predict a whole volume with auto-fitting patches: brain cube, patches, ``predictor`` on batches of
    ``(b, C, *patch)``, stitched by averaging into ``(C_out, *spatial)``."""
    t = _as_tensor(image)
    starts = autofit_starts(brain_box(t), patch_size)
    patches = extract_patches(t, starts, patch_size)
    outs = [predictor(patches[i:i + int(batch_size)]) for i in range(0, len(starts), int(batch_size))]
    return stitch_patches(torch.cat(outs), starts, t.shape[1:])


class AutoFitInferer:
    """A MONAI-style inferer (``inferer(inputs, network)``) predicting each volume of a batch with auto-fitting patches
    (:func:`autofit_inference`), for ``SupervisedEvaluator`` and the inference bundles.

    Args:
        roi_size: the network's patch.
        sw_batch_size: patches per network call.

    Shapes: (B, C, *spatial) -> (B, C_out, *spatial).
    """

    def __init__(self, roi_size: Sequence[int], sw_batch_size: int = 1) -> None:
        self.roi_size = [int(r) for r in roi_size]
        self.sw_batch_size = int(sw_batch_size)

    def __call__(self, inputs: torch.Tensor, network: Callable[[torch.Tensor], torch.Tensor], *args: Any,
                 **kwargs: Any) -> torch.Tensor:
        def predict(x: torch.Tensor) -> torch.Tensor:
            return network(x.to(inputs.device), *args, **kwargs)

        outs = [autofit_inference(volume, predict, self.roi_size, self.sw_batch_size) for volume in inputs]
        return torch.stack(outs).to(inputs.device)


def patch_inferer(patching: str, roi_size: Sequence[int], sw_batch_size: int = 1, overlap: float = 0.5) -> Any:
    """The inferer a bundle's ``patching`` key names (:data:`PATCHING`).

    Raises:
        ValueError: another name (the message lists the known ones).
    """
    if patching == "autofit":
        return AutoFitInferer(roi_size, sw_batch_size)
    if patching == "sliding_window":
        from monai.inferers import SlidingWindowInferer

        return SlidingWindowInferer(roi_size=list(roi_size), sw_batch_size=int(sw_batch_size), overlap=overlap,
                                    mode="gaussian")
    raise ValueError(f"patching must be one of {list(PATCHING)}, got {patching!r} (bundle key 'patching').")
