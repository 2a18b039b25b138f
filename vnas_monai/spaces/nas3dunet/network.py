"""The discrete NAS-3D-U-Net: every node holds only its two kept HMs, each with its one op (Wang, BraTS 2019, §2.4:
"we will replace the DCs and UCs with the searched architectures and retrain the network").

Module names are the supernet's, so its weights move here by ``state_dict`` key (:meth:`NAS3DUNet.from_supernet`).
The network keeps its genotype's codes as the buffer ``arch_code`` and refuses the weights of another genotype, even
under ``strict=False`` (as :class:`vnas_monai.spaces.vnas.VNASNet`).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Optional, Union

import torch

from vnas_monai.spaces.protocol import BundleNetwork

from .backbone import NAS3DUNetBackbone, divisor
from .genotype import Genotype
from .supernet import ARCH_PARAM_NAMES, NAS3DUNetSupernet

__all__ = ["BUNDLE", "NAS3DUNet", "build_nas3dunet", "network_def"]

GenotypeSpec = Union[Genotype, str, os.PathLike, Mapping]


class NAS3DUNet(NAS3DUNetBackbone):
    """The discrete NAS-3D-U-Net of a genotype.

    Args:
        spatial_dims: must be 3.
        in_channels: image channels (modalities).
        out_channels: logit channels, one per region (apply a sigmoid for the region probabilities).
        genotype: a :class:`.genotype.Genotype`, its dict, or the path of its JSON file.
        init_filters: node width at the two top levels; default ``in_channels`` (the paper's m).
        **kwargs: ``depth``, ``zoom``, ``act``, ``norm``, ``pre_kernel_size`` (see ``NAS3DUNetBackbone``).

    Shapes: (N, in_channels, H, W, D) -> logits (N, out_channels, H, W, D); H, W, D multiples of 2^(depth + 1).
    """

    def __init__(self, spatial_dims: int = 3, in_channels: int = 4, out_channels: int = 3,
                 genotype: Optional[GenotypeSpec] = None, init_filters: Optional[int] = None, **kwargs: Any) -> None:
        if genotype is None:
            raise ValueError("NAS3DUNet needs a genotype (a Genotype, its dict or the path of its JSON file).")
        geno = Genotype.resolve(genotype)
        super().__init__(geno.hms("down"), geno.hms("up"), spatial_dims=spatial_dims, in_channels=in_channels,
                         out_channels=out_channels, init_filters=init_filters, **kwargs)
        self.genotype = geno
        self.register_buffer("arch_code", torch.tensor(geno.codes, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x)

    @classmethod
    def from_supernet(cls, supernet: NAS3DUNetSupernet, genotype: Optional[GenotypeSpec] = None) -> NAS3DUNet:
        """The discrete network of ``genotype`` (default: ``supernet.derive()``) with the supernet's weights."""
        geno = Genotype.resolve(genotype) if genotype is not None else supernet.derive()
        net = cls(genotype=geno, **supernet.config)
        own = net.state_dict()
        own.update({k: v for k, v in supernet.state_dict().items() if k in own and k not in ARCH_PARAM_NAMES})
        net.load_state_dict(own)
        return net.to(next(supernet.parameters()).device)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False):
        """``nn.Module.load_state_dict`` that refuses another genotype's weights whatever ``strict`` says.

        Raises:
            ValueError: the state dict's ``arch_code`` differs from this network's, or it lacks tensors this
                network has (the weights of another genotype or network).
        """
        code = state_dict.get("arch_code")
        if code is not None and torch.as_tensor(code).tolist() != self.arch_code.tolist():
            other = Genotype.from_codes(torch.as_tensor(code).tolist())
            raise ValueError(f"these weights belong to {other!r}, but this network is {self.genotype!r}; build "
                             "NAS3DUNet with the checkpoint's genotype.")
        missing = [k for k in self.state_dict() if k not in state_dict and k != "arch_code"
                   and not k.endswith("num_batches_tracked")]
        if missing:
            raise ValueError(f"the state dict lacks {len(missing)} of this network's {len(self.state_dict())} "
                             f"tensors (first: {missing[:3]}): the weights are of another genotype or network; "
                             "refusing to run a partly initialised network.")
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


def build_nas3dunet(genotype: GenotypeSpec, **kwargs: Any) -> NAS3DUNet:
    """The space's network builder (:class:`vnas_monai.spaces.NetworkBuilder`): ``NAS3DUNet`` of a genotype."""
    return NAS3DUNet(genotype=genotype, **kwargs)


def network_def(architecture: str = "@architecture") -> OrderedDict:
    """The ``network_def`` of a bundle config: ``NAS3DUNet`` of ``architecture`` (a genotype, its dict or the path of
    its JSON file), shaped by the bundle keys ``in_channels`` (modalities), ``num_classes`` (the region channels)
    and ``init_filters`` (the node width of the top levels, the paper's m)."""
    return OrderedDict([("_target_", "vnas_monai.spaces.nas3dunet.NAS3DUNet"), ("spatial_dims", 3),
                        ("in_channels", "@in_channels"), ("out_channels", "@num_classes"),
                        ("genotype", architecture), ("init_filters", "@init_filters")])


def _export(name: str, config: dict, settings: Mapping[str, Any]) -> dict:
    from .exported import export_config

    return export_config(name, config, settings)


#: what the NAS-3D-U-Net bundles and the MONAI Label export need (:class:`vnas_monai.spaces.BundleNetwork`): the
#: network outputs one sigmoid channel per region; the exported configs normalise brain-wise and write label maps
BUNDLE = BundleNetwork(
    title="NAS-3D-U-Net",
    network_def=network_def,
    divisor=divisor(3),
    description="NAS-3D-U-Net (Wang, BraTS 2019): a U-Net whose downward and upward cells were searched "
                "(differentiable hybrid modules); one sigmoid output per tumour region.",
    references=("Wang, Y., et al.: Neural Architecture Search for Gliomas Segmentation on Multimodal Magnetic "
                "Resonance Imaging. BraTS 2019 (arXiv:2005.06338).",),
    notes=("the network outputs one sigmoid channel per region (ET, TC, WT for BraTS); inference writes them back "
           "as the layout's labels (BraTS 1/2/4, MSD 1/2/3).",
           "the weights carry the genotype's codes (`arch_code`): the network refuses weights of another genotype.",),
    settings_keys=("layout", "region_names", "brain_stats", "output_labels"),
    output_labels=lambda settings: dict(settings["output_labels"]),
    adapt_config=_export,
)
