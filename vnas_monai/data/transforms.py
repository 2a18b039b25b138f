"""Dictionary transforms of the V-NAS data pipelines that MONAI does not ship as such.

* :class:`ClipIntensityd`: clip intensities to a window (the paper clips CT to [-100, 240] HU, then z-normalises each
  case; the normalisation is MONAI's ``NormalizeIntensityd`` in the bundles).
* :class:`CheckedLoadImaged`: MONAI ``LoadImaged`` whose failures (truncated or corrupt file, a DICOM folder holding
  several series) raise an error naming the key and the file.
* :class:`CheckImageLabeld`: fail early and clearly, naming the files, on an image/label pair that does not fit
  (shape, geometry, NaN/inf, label values), instead of training on garbage or crashing deep inside a collate.

Geometry (checked on the real ``totalseg_ct`` DICOM series and its NIfTI segmentation, MONAI 1.6.1): MONAI's
``ITKReader`` (default ``affine_lps_to_ras=True``) gives the DICOM series a RAS affine with axis codes ``LPS``
(``space`` = ``"RAS"``), while the NIfTI segmentation written for it by dcm2niix-style converters is stored ``LAS``:
same shape, but the y axis is flipped, so the two raw arrays are *not* voxel-aligned and their affines differ
(y column sign and origin). Both describe the same physical grid, and after ``Orientationd(axcodes="RAS")`` the two
affines are identical and the voxels align (the organs have their expected HU). With ``affine_lps_to_ras=False`` the
image affine is in LPS (``space`` = ``"LPS"``) and MONAI 1.6's ``Orientationd`` honours that, with the same result.
:class:`CheckImageLabeld` therefore compares the *physical* grids: each affine is converted to RAS using the meta
``space`` and brought to its closest canonical (RAS) voxel order before comparing, so a pair that only differs in
storage order passes and a pair on different grids fails, wherever the check is placed before or after
``Orientationd``. Placed before ``Orientationd``, it does not make the arrays voxel-aligned: the pipeline must still
reorient (or resample) both keys.
"""

from __future__ import annotations

import math
import os
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import nibabel as nib
import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.data.utils import is_no_channel
from monai.transforms import LoadImaged, MapTransform

__all__ = ["ClipIntensityd", "CheckImageLabeld", "CheckedLoadImaged", "dicom_series_uids"]

_SPATIAL_RANK = 3
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _window(a_min: float | None, a_max: float | None, clip: Sequence[float] | None) -> tuple[Any, Any]:
    if clip is not None:
        if isinstance(clip, (str, bytes)) or not isinstance(clip, Sequence) or len(clip) != 2:
            raise ValueError(f"clip must be a [min, max] pair or None, got {clip!r}.")
        if (a_min is not None and a_min != clip[0]) or (a_max is not None and a_max != clip[1]):
            raise ValueError(f"Give the window either as clip={list(clip)} or as a_min/a_max ({a_min}, {a_max}).")
        a_min, a_max = clip
    a_min = None if a_min is None else float(a_min)
    a_max = None if a_max is None else float(a_max)
    if a_min is not None and a_max is not None and a_min > a_max:
        raise ValueError(f"Clipping window is empty: a_min={a_min} > a_max={a_max}.")
    return a_min, a_max


class ClipIntensityd(MapTransform):
    """Clip the intensities of ``keys`` to ``[a_min, a_max]`` (either bound may be None: unbounded on that side).

    Works on torch tensors (``MetaTensor`` metadata is kept) and numpy arrays, and keeps their dtype (for integer
    data the bounds are rounded inwards). With no bound it is a no-op.

    Args:
        keys: keys of the items to clip.
        a_min: lower bound, or None.
        a_max: upper bound, or None.
        clip: alternatively the window as a ``[min, max]`` pair (e.g. ``[-100, 240]`` HU, as in the paper), or None.
        allow_missing_keys: do not fail on a missing key.

    Raises:
        ValueError: malformed or empty window, or ``clip`` conflicting with ``a_min`` / ``a_max``.
    """

    def __init__(
        self,
        keys: KeysCollection,
        a_min: float | None = None,
        a_max: float | None = None,
        clip: Sequence[float] | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.a_min, self.a_max = _window(a_min, a_max, clip)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        if self.a_min is None and self.a_max is None:
            return d
        for key in self.key_iterator(d):
            img = d[key]
            if isinstance(img, torch.Tensor):
                lo, hi = self._bounds(torch.is_floating_point(img) or torch.is_complex(img))
                d[key] = torch.clamp(img, min=lo, max=hi)
            else:
                img = np.asarray(img)
                d[key] = np.clip(img, *self._bounds(np.issubdtype(img.dtype, np.inexact)))
        return d

    def _bounds(self, floating: bool) -> tuple[Any, Any]:
        """The window; for integer data rounded inwards to ints, so that the dtype is kept."""
        if floating:
            return self.a_min, self.a_max
        lo = None if self.a_min is None else math.ceil(self.a_min)
        hi = None if self.a_max is None else math.floor(self.a_max)
        return lo, hi


def _meta(data: Mapping[Hashable, Any], key: Hashable) -> dict[str, Any]:
    value = data[key]
    if isinstance(value, MetaTensor):
        meta = dict(value.meta)
        meta["affine"] = value.affine
        return meta
    meta = data.get(f"{key}_meta_dict")
    return dict(meta) if isinstance(meta, Mapping) else {}


def _numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _spatial_shape(value: Any, meta: Mapping[str, Any], what: str) -> tuple[int, ...]:
    """Spatial shape of a channel-first or channel-less array (a raw channel-last one from a loader is recognised)."""
    shape = tuple(int(s) for s in value.shape)
    if len(shape) == _SPATIAL_RANK:
        return shape
    if len(shape) == _SPATIAL_RANK + 1:
        channel_dim, loaded = meta.get("original_channel_dim"), meta.get("spatial_shape")
        if channel_dim is not None and not is_no_channel(channel_dim) and loaded is not None:
            loaded = tuple(int(s) for s in _numpy(loaded).ravel())
            if shape[:-1] == loaded and shape[1:] != loaded:  # straight from LoadImaged, before EnsureChannelFirstd
                return shape[:-1]
        return shape[1:]
    raise ValueError(f"{what} has shape {shape}: expected {_SPATIAL_RANK} spatial axes and at most one channel axis.")


def _ras_affine(meta: Mapping[str, Any]) -> np.ndarray | None:
    affine = meta.get("affine")
    if affine is None:
        return None
    affine = _numpy(affine).astype(np.float64)
    if affine.shape != (4, 4):
        return None
    if str(meta.get("space", "RAS")).upper().endswith("LPS"):
        affine = _LPS_TO_RAS @ affine
    return affine


def _canonical(affine: np.ndarray, shape: Sequence[int]) -> tuple[np.ndarray, tuple[int, ...]]:
    """The same grid with its voxel axes permuted and flipped to the closest RAS order: (affine, shape)."""
    ornt = nib.io_orientation(affine)
    canon_affine = affine @ nib.orientations.inv_ornt_aff(ornt, shape)
    canon_shape = [0] * len(shape)
    for axis, (world_axis, _) in enumerate(ornt):
        canon_shape[int(world_axis)] = int(shape[axis])
    return canon_affine, tuple(canon_shape)


def _codes(affine: np.ndarray) -> str:
    return "".join(nib.aff2axcodes(affine))


class CheckImageLabeld(MapTransform):
    """Check a loaded image/label pair and raise a ``ValueError`` naming the files when it does not fit.

    Checks, in order: the image has no NaN/inf; image and label lie on the same grid (spatial shape and, when both
    carry an affine, geometry: each affine is taken to RAS using the meta ``space`` and both grids are compared in
    their closest canonical voxel order, with a relative tolerance ``affine_tol`` (numpy ``allclose`` ``rtol``, plus
    an absolute ``affine_tol`` x voxel size), so a label that is only stored with flipped/permuted axes passes, see
    the module docstring); and, if ``num_classes`` is given, every label value is an integer in
    ``range(num_classes)``. A no-op (the data are returned unchanged) when all checks pass.

    Place it after ``LoadImaged`` (and ``EnsureChannelFirstd``), before any spatial transform that would hide a
    mismatch (``Spacingd`` / ``Resized`` resample both keys to the same grid). Inputs: channel-first or channel-less
    3D arrays (``MetaTensor`` or numpy; for numpy, metadata is read from ``<key>_meta_dict`` if present).

    Args:
        keys: ``(image_key, label_key)``.
        num_classes: number of classes of the label, or None to skip the label value check.
        allow_missing_keys: skip the checks that need a missing key instead of raising ``KeyError``.
        check_affine: compare the geometry too (switch off only for labels known to carry a wrong header).
        affine_tol: relative tolerance of the geometry comparison.

    Raises:
        ValueError: at call time, for any failed check (the message names the image file and, for pair checks, the
            label file, with both shapes or both affines).
    """

    def __init__(
        self,
        keys: KeysCollection = ("image", "label"),
        num_classes: int | None = None,
        allow_missing_keys: bool = False,
        check_affine: bool = True,
        affine_tol: float = 1e-3,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if len(self.keys) != 2:
            raise ValueError(f"CheckImageLabeld needs keys=(image_key, label_key), got {self.keys!r}.")
        if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int)
                                        or num_classes < 1):
            raise ValueError(f"num_classes must be an int >= 1 or None, got {num_classes!r}.")
        self.num_classes = num_classes
        self.check_affine = check_affine
        self.affine_tol = float(affine_tol)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        image_key, label_key = self.keys
        present = [k for k in (image_key, label_key) if k in d]
        if len(present) < 2 and not self.allow_missing_keys:
            missing = [k for k in (image_key, label_key) if k not in d]
            raise KeyError(f"CheckImageLabeld: key(s) {missing} not in the data (keys: {list(d)}).")
        metas = {k: _meta(d, k) for k in present}
        names = {k: str(metas[k].get("filename_or_obj", f"<{k}>")) for k in present}
        if image_key in d:
            self._check_finite(d[image_key], names[image_key])
        if image_key in d and label_key in d:
            self._check_grid(d, metas, names)
        if label_key in d and self.num_classes is not None:
            self._check_values(d[label_key], names[label_key], names.get(image_key, f"<{image_key}>"))
        return d

    @staticmethod
    def _check_finite(image: Any, name: str) -> None:
        if isinstance(image, torch.Tensor):
            if not torch.is_floating_point(image) and not torch.is_complex(image):
                return
            bad = int((~torch.isfinite(image)).sum())
        else:
            arr = np.asarray(image)
            if not np.issubdtype(arr.dtype, np.inexact):
                return
            bad = int((~np.isfinite(arr)).sum())
        if bad:
            raise ValueError(f"Image {name} has {bad} NaN/inf voxel(s).")

    def _check_grid(
        self, d: Mapping[Hashable, Any], metas: Mapping[Hashable, Any], names: Mapping[Hashable, str]
    ) -> None:
        image_key, label_key = self.keys
        image_name, label_name = names[image_key], names[label_key]
        shapes = {k: _spatial_shape(d[k], metas[k], f"{k} {names[k]}") for k in (image_key, label_key)}
        affines = {k: _ras_affine(metas[k]) for k in (image_key, label_key)}
        use_affine = self.check_affine and all(a is not None for a in affines.values())
        if not use_affine:
            if shapes[image_key] != shapes[label_key]:
                raise ValueError(
                    f"Image {image_name} has spatial shape {shapes[image_key]} but its label {label_name} has "
                    f"{shapes[label_key]}."
                )
            return
        canon = {k: _canonical(affines[k], shapes[k]) for k in (image_key, label_key)}
        if canon[image_key][1] != canon[label_key][1]:
            raise ValueError(
                f"Image {image_name} has spatial shape {shapes[image_key]} ({_codes(affines[image_key])}) but its "
                f"label {label_name} has {shapes[label_key]} ({_codes(affines[label_key])}): not the same grid."
            )
        a, b = canon[image_key][0][:3], canon[label_key][0][:3]
        voxel = float(np.linalg.norm(a[:, :3], axis=0).max())
        if not np.allclose(a, b, rtol=self.affine_tol, atol=self.affine_tol * voxel):
            raise ValueError(
                f"Image {image_name} and its label {label_name} are not on the same physical grid: RAS affines (in "
                f"canonical voxel order) differ by more than {self.affine_tol:g} relative.\n"
                f"image (axes {_codes(affines[image_key])}):\n{np.round(a, 4)}\n"
                f"label (axes {_codes(affines[label_key])}):\n{np.round(b, 4)}\n"
                "Fix the label's header, or pass check_affine=False if the labels are known to carry a wrong one."
            )

    def _check_values(self, label: Any, label_name: str, image_name: str) -> None:
        arr = label.detach() if isinstance(label, torch.Tensor) else torch.as_tensor(np.asarray(label))
        if arr.numel() == 0:
            return
        if arr.dtype == torch.bool:
            arr = arr.to(torch.uint8)
        lo, hi = float(arr.min()), float(arr.max())
        ok = lo >= 0 and hi <= self.num_classes - 1
        if ok and torch.is_floating_point(arr):
            ok = bool((arr == torch.round(arr)).all())
        if ok:
            return
        values = torch.unique(arr).cpu().numpy().tolist()
        bad = [v for v in values if not (float(v).is_integer() and 0 <= v < self.num_classes)]
        shown = ", ".join(f"{v:g}" for v in bad[:20]) + (f", ... ({len(bad)} in all)" if len(bad) > 20 else "")
        raise ValueError(
            f"Label {label_name} (of image {image_name}) has values outside range({self.num_classes}): {shown}."
        )


def dicom_series_uids(folder: str | os.PathLike) -> list[str]:
    """The DICOM SeriesInstanceUIDs found in ``folder`` (ITK/GDCM header scan, not recursive)."""
    import itk

    names = itk.GDCMSeriesFileNames.New()
    names.SetUseSeriesDetails(False)  # group by SeriesInstanceUID only, as MONAI's ITKReader does
    names.SetDirectory(str(folder))
    return [str(uid) for uid in names.GetSeriesUIDs()]


class CheckedLoadImaged(LoadImaged):
    """``monai.transforms.LoadImaged`` that names the file it could not load, and refuses ambiguous DICOM folders.

    MONAI reads NIfTI voxel data lazily, so a truncated ``.nii.gz`` (valid header, cut data) fails deep inside the
    loader with e.g. ``EOFError: Compressed file ended before the end-of-stream marker was reached`` and no file name;
    and ``ITKReader`` given a folder holding several DICOM series silently loads the first one. Here every failure is
    re-raised as ``ValueError("Cannot load <key> <path>: ...")`` and a folder with more than one SeriesInstanceUID
    is an error listing them. Arguments: as ``LoadImaged``; ``check_series=False`` skips the DICOM series check.
    """

    def __init__(self, keys: KeysCollection, *args: Any, check_series: bool = True, **kwargs: Any) -> None:
        super().__init__(keys, *args, **kwargs)
        self.check_series = bool(check_series)

    def __call__(self, data: Mapping[Hashable, Any], reader: Any = None) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            path = d[key]
            if isinstance(path, (str, os.PathLike)) and self.check_series and os.path.isdir(path):
                uids = dicom_series_uids(path)
                if len(uids) > 1:
                    raise ValueError(
                        f"DICOM folder {path} ({key}) holds {len(uids)} series ({', '.join(uids)}): "
                        "keep one series per folder (the image of a case must be a single series)."
                    )
                if not uids:
                    raise ValueError(f"DICOM folder {path} ({key}) holds no readable DICOM series.")
        try:
            return super().__call__(d, reader)
        except Exception as e:
            key, path = self._failed(d)
            raise ValueError(f"Cannot load {key} {path}: {type(e).__name__}: {e}") from e

    def _failed(self, d: Mapping[Hashable, Any]) -> tuple[Any, Any]:
        """The first key whose file is not loadable on its own (for the message); all keys if none is found."""
        for key in self.key_iterator(dict(d)):
            try:
                self._loader(d[key])
            except Exception:
                return key, d[key]
        return "/".join(str(k) for k in self.keys), [d.get(k) for k in self.keys]
