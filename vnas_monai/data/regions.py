"""Label maps <-> overlapping tumour regions (Wang, BraTS 2019, Fig. 3 and §3.1), as MONAI dictionary transforms.

NAS-3D-U-Net predicts one sigmoid channel per *region*, not one softmax channel per label. The regions are, in this
channel order (the paper's, Fig. 3):

====  ==============================  ==========================  ================================
name  meaning                         ``"brats"`` (BraTS 2019-21)  ``"msd"`` (MSD Task01_BrainTumour)
====  ==============================  ==========================  ================================
ET    enhancing tumour                4                           3
TC    tumour core = necrotic /        1 + 4                       2 + 3
      non-enhancing core + ET
WT    whole tumour = TC + edema       1 + 2 + 4                   1 + 2 + 3
====  ==============================  ==========================  ================================

BraTS labels: 1 necrotic and non-enhancing tumour core, 2 peritumoral edema, 4 GD-enhancing tumour (§3.1). MSD
Task01_BrainTumour's ``dataset.json`` declares ``{"0": "background", "1": "edema", "2": "non-enhancing tumor",
"3": "enhancing tumour"}``: so MSD 1 = BraTS 2, MSD 2 = BraTS 1 and MSD 3 = BraTS 4, hence TC = 2 + 3 and
WT = 1 + 2 + 3 there.

The inverse (:func:`regions_to_label`) thresholds the region probabilities at 0.5 and paints them nested, outermost
first: WT \\ TC -> edema, TC \\ ET -> necrosis / non-enhancing core, ET -> enhancing (a voxel the network calls ET but
not TC or WT is still enhancing: the inner region wins). For nested layouts ``label -> regions -> label`` is the
identity on every label map whose values belong to the layout.

The ``"generic"`` layout (``num_regions=R``) makes each label ``1 .. R`` its own, disjoint region (``region1`` ..
``regionR``), e.g. the hippocampus' anterior (1) and posterior (2): the same sigmoid / region code then runs on a
one-modality dataset. Its inverse takes, per voxel, the most probable region above the threshold.

Shapes: a label map is ``(1, *spatial)`` (channel first, as after ``EnsureChannelFirstd``) or ``(*spatial)``; the
regions are ``(R, *spatial)`` float 0/1.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

__all__ = ["LAYOUTS", "LabelToRegionsd", "RegionLayout", "RegionsToLabeld", "get_layout", "label_to_regions",
           "region_names", "regions_to_label"]


@dataclasses.dataclass(frozen=True)
class RegionLayout:
    """The regions of a label convention.

    Attributes:
        name: the layout's name.
        regions: region name -> the labels it unites, in channel order.
        paint: for the inverse, ``(region, label)`` painted in this order (a later one overwrites an earlier one).
        nested: each region contains the ones after it in ``paint`` order (the BraTS regions), as opposed to
            disjoint regions (``"generic"``).
    """

    name: str
    regions: tuple[tuple[str, tuple[int, ...]], ...]
    paint: tuple[tuple[str, int], ...]
    nested: bool = True

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.regions]

    @property
    def labels(self) -> list[int]:
        """The foreground labels of the layout, sorted."""
        return sorted({v for _, labels in self.regions for v in labels})

    def __len__(self) -> int:
        return len(self.regions)


#: The named label conventions (``"generic"`` is built by :func:`get_layout` for a number of regions).
LAYOUTS: dict[str, RegionLayout] = {
    "brats": RegionLayout("brats", (("ET", (4,)), ("TC", (1, 4)), ("WT", (1, 2, 4))),
                          (("WT", 2), ("TC", 1), ("ET", 4))),
    "msd": RegionLayout("msd", (("ET", (3,)), ("TC", (2, 3)), ("WT", (1, 2, 3))),
                        (("WT", 1), ("TC", 2), ("ET", 3))),
}


def get_layout(layout: str | RegionLayout, num_regions: int | None = None) -> RegionLayout:
    """The :class:`RegionLayout` named ``layout`` (``"brats"``, ``"msd"`` or ``"generic"`` with ``num_regions``).

    Raises:
        ValueError: an unknown name, or ``"generic"`` without a positive ``num_regions``.
    """
    if isinstance(layout, RegionLayout):
        return layout
    key = str(layout).strip().lower()
    if key == "generic":
        if isinstance(num_regions, bool) or not isinstance(num_regions, int) or num_regions < 1:
            raise ValueError(f"layout 'generic' needs num_regions (an int >= 1: labels 1 .. R are the regions), "
                             f"got {num_regions!r}.")
        regions = tuple((f"region{r}", (r,)) for r in range(1, num_regions + 1))
        return RegionLayout("generic", regions, tuple((f"region{r}", r) for r in range(1, num_regions + 1)), False)
    if key not in LAYOUTS:
        raise ValueError(f"unknown region layout {layout!r}; known layouts: {', '.join([*LAYOUTS, 'generic'])}.")
    return LAYOUTS[key]


def _squeeze_label(label: torch.Tensor, where: str) -> tuple[torch.Tensor, bool]:
    if label.ndim >= 2 and label.shape[0] == 1:
        return label[0], True
    if label.ndim == 4:
        raise ValueError(f"{where}: a label map must have one channel, got shape {tuple(label.shape)}.")
    return label, False


def label_to_regions(label: Any, layout: str | RegionLayout = "brats", num_regions: int | None = None,
                     where: str = "label") -> torch.Tensor:
    """Label map ``(1, *spatial)`` or ``(*spatial)`` -> regions ``(R, *spatial)`` float 0/1 (module docstring).

    Raises:
        ValueError: a label value that is not background or a label of the layout (naming ``where``).
    """
    lay = get_layout(layout, num_regions)
    t = torch.as_tensor(label)
    t, _ = _squeeze_label(t, where)
    t = t.round().long() if t.is_floating_point() else t.long()
    allowed = torch.tensor([0, *lay.labels])
    bad = torch.unique(t[~torch.isin(t, allowed)])
    if bad.numel():
        raise ValueError(f"{where}: label values {bad.tolist()[:8]} are not in the {lay.name!r} layout (background 0 "
                         f"and {lay.labels}); is it the right layout (brats 1/2/4, msd 1/2/3)?")
    out = torch.stack([torch.isin(t, torch.tensor(labels)) for _, labels in lay.regions])
    return out.to(torch.float32)


def regions_to_label(regions: Any, layout: str | RegionLayout = "brats", threshold: float = 0.5,
                     num_regions: int | None = None, where: str = "pred") -> torch.Tensor:
    """Region probabilities (sigmoid outputs) ``(R, *spatial)`` -> label map ``(1, *spatial)`` in the layout's labels.

    Nested layouts paint ``paint`` in order (outermost first) where the probability exceeds ``threshold``; the
    generic layout takes the most probable region above ``threshold`` (0 where none is).

    Raises:
        ValueError: the channel count differs from the layout's regions.
    """
    p = torch.as_tensor(regions)
    p = p.as_tensor() if hasattr(p, "as_tensor") else p
    lay = get_layout(layout, num_regions if num_regions is not None else int(p.shape[0]) if p.ndim else None)
    if p.ndim < 2 or p.shape[0] != len(lay):
        raise ValueError(f"{where}: expected {len(lay)} region channels {lay.names} first, got shape "
                         f"{tuple(p.shape)}.")
    p = p.float()
    out = torch.zeros(p.shape[1:], dtype=torch.long, device=p.device)
    if lay.nested:
        index = {name: i for i, name in enumerate(lay.names)}
        for name, value in lay.paint:
            out[p[index[name]] > threshold] = value
    else:
        best, arg = p.max(0)
        values = torch.tensor([value for _, value in lay.paint], device=p.device)
        out = torch.where(best > threshold, values[arg], out)
    return out[None]


class LabelToRegionsd(MapTransform):
    """MONAI dictionary transform: each key's label map ``(1, *spatial)`` -> regions ``(R, *spatial)`` float 0/1.

    Channels in the paper's order ET, TC, WT (``"brats"`` / ``"msd"``) or ``region1 .. regionR`` (``"generic"``);
    a ``MetaTensor`` keeps its meta data.

    Args:
        keys: keys of the label maps.
        layout: ``"brats"``, ``"msd"``, ``"generic"`` or a :class:`RegionLayout`.
        num_regions: for ``"generic"``: the number of labels 1 .. R.
        allow_missing_keys: skip missing keys.
    """

    def __init__(self, keys: KeysCollection, layout: str | RegionLayout = "brats", num_regions: int | None = None,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.layout = get_layout(layout, num_regions)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = _like(d[key], label_to_regions(d[key], self.layout, where=f"key {key!r}"))
        return d


class RegionsToLabeld(MapTransform):
    """MONAI dictionary transform, the inverse of :class:`LabelToRegionsd`: region probabilities ``(R, *spatial)``
    (after a sigmoid) -> a label map ``(1, *spatial)`` in the layout's own labels (:func:`regions_to_label`).

    Args:
        keys: keys of the region probabilities.
        layout: as :class:`LabelToRegionsd`.
        threshold: probability above which a voxel belongs to a region (0.5).
        num_regions: for ``"generic"``.
        allow_missing_keys: skip missing keys.
    """

    def __init__(self, keys: KeysCollection, layout: str | RegionLayout = "brats", threshold: float = 0.5,
                 num_regions: int | None = None, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.layout = get_layout(layout, num_regions)
        self.threshold = float(threshold)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = _like(d[key], regions_to_label(d[key], self.layout, self.threshold, where=f"key {key!r}"))
        return d


def _like(original: Any, out: torch.Tensor) -> Any:
    """``out`` in the container of ``original`` (MetaTensor with its meta, numpy array or tensor)."""
    from monai.data import MetaTensor

    if isinstance(original, MetaTensor):
        return MetaTensor(out, meta=original.meta, applied_operations=original.applied_operations)
    if isinstance(original, np.ndarray):
        return out.cpu().numpy()
    return out


def region_names(layout: str | RegionLayout, num_regions: int | None = None) -> list[str]:
    """The region (channel) names of a layout, in channel order."""
    return get_layout(layout, num_regions).names
