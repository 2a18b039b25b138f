"""The discrete V-NAS network: each cell holds only its chosen candidate (paper Alg. 1, after discretisation).

Module names are those of ``VNASSupernet``, so the supernet's weights move here by ``state_dict`` key. The network
keeps its architecture code as a buffer and refuses weights of another architecture, even under ``strict=False``
(MONAI Label and MONAI's ``CheckpointLoader`` load that way and would otherwise run a half-initialised network).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Optional, Union

import torch

from vnas_monai.spaces.protocol import BundleNetwork

from .backbone import DIVISOR, VNASBackbone
from .encoding import Architecture
from .supernet import ARCH_PARAM_NAMES, VNASSupernet

__all__ = ["BUNDLE", "VNASNet", "build_vnasnet", "network_def"]

ArchSpec = Union[Architecture, str, os.PathLike, Mapping]


class VNASNet(VNASBackbone):
    """Discrete V-NAS segmentation network.

    Args:
        spatial_dims: must be 3.
        in_channels: image channels.
        out_channels: classes, background included.
        architecture: an ``Architecture``, a path to an arch.json, a preset (``"nih"``, ``"msd_lung"``,
            ``"msd_pancreas"``) or a uniform candidate (``"2d"``, ``"3d"``, ``"p3d"``).
        init_filters: stem width F (64 in the paper).
        zero_init_residual: start each encoder cell as the identity (see ``VNASBackbone``); on by default here,
            where the network is trained from scratch.
        **kwargs: backbone options (``act``, ``norm``, ``dense_layers``, ``dense_growth``, ``dense_bn_size``,
            ``pvp_pool_sizes``, ``upsample_mode``, ``checkpointing``, ``conv_impl``).

    Shapes: (N, in_channels, H, W, D) -> logits (N, out_channels, H, W, D); H, W, D multiples of 32.
    """

    def __init__(
        self,
        spatial_dims: int = 3,
        in_channels: int = 1,
        out_channels: int = 2,
        architecture: ArchSpec = "nih",
        init_filters: int = 64,
        zero_init_residual: bool = True,
        **kwargs: Any,
    ) -> None:
        arch = Architecture.resolve(architecture)
        super().__init__(
            [[c] for c in arch.encoder],
            [[c] for c in arch.decoder],
            spatial_dims=spatial_dims,
            in_channels=in_channels,
            out_channels=out_channels,
            init_filters=init_filters,
            zero_init_residual=zero_init_residual,
            **kwargs,
        )
        self.architecture = arch
        self.register_buffer("arch_code", torch.tensor(arch.codes, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x)

    @classmethod
    def from_supernet(cls, supernet: VNASSupernet, architecture: Optional[ArchSpec] = None,
                      **overrides: Any) -> VNASNet:
        """The discrete network of ``architecture`` (default: ``supernet.derive()``) with the supernet's weights.

        ``overrides`` change backbone options of the supernet's config that add modules of their own (e.g.
        ``deep_supervision`` for the retraining): those modules keep their fresh initialisation."""
        arch = Architecture.resolve(architecture) if architecture is not None else supernet.derive()
        net = cls(architecture=arch, **{**supernet.config, **overrides})
        src = supernet.state_dict()
        own = net.state_dict()
        own.update({k: v for k, v in src.items() if k in own and k not in ARCH_PARAM_NAMES})
        net.load_state_dict(own)
        return net.to(next(supernet.parameters()).device)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False):
        """``nn.Module.load_state_dict`` that refuses another architecture's weights whatever ``strict`` says.

        Raises:
            ValueError: the state dict's ``arch_code`` differs from this network's, or it lacks weights of a
                candidate this network uses (e.g. a checkpoint of another architecture without ``arch_code``).
        """
        code = state_dict.get("arch_code")
        if code is not None and torch.as_tensor(code).tolist() != self.arch_code.tolist():
            other = Architecture.from_codes(torch.as_tensor(code).tolist())
            raise ValueError(
                f"these weights belong to architecture {other!r}, but this network is {self.architecture!r}; "
                "build VNASNet with the checkpoint's arch.json."
            )
        missing = [
            k for k in self.state_dict() if k not in state_dict and not k.endswith("num_batches_tracked")
            and k != "arch_code"
        ]
        if missing:
            raise ValueError(
                f"the state dict lacks {len(missing)} of this network's {len(self.state_dict())} tensors "
                f"(first: {missing[:3]}): the weights are of another architecture or network; refusing to run "
                "a partly initialised network."
            )
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


def build_vnasnet(architecture: ArchSpec, **kwargs: Any) -> VNASNet:
    """The V-NAS space's network builder (:class:`vnas_monai.spaces.NetworkBuilder`): ``VNASNet`` of an encoding."""
    return VNASNet(architecture=architecture, **kwargs)


def network_def(architecture: str = "@architecture") -> OrderedDict:
    """The ``network_def`` of a bundle config: ``VNASNet`` of ``architecture`` (a reference to an arch.json path, a
    preset or an ``Architecture``), shaped by the bundle keys ``in_channels``, ``num_classes`` and ``init_filters``."""
    return OrderedDict([("_target_", "vnas_monai.spaces.vnas.VNASNet"), ("spatial_dims", 3),
                        ("in_channels", "@in_channels"), ("out_channels", "@num_classes"),
                        ("architecture", architecture), ("init_filters", "@init_filters")])


#: what the pipeline's bundles and the MONAI Label export need of V-NAS (:class:`vnas_monai.spaces.BundleNetwork`)
BUNDLE = BundleNetwork(
    title="V-NAS",
    network_def=network_def,
    divisor=DIVISOR,
    description="V-NAS (Zhu et al., 3DV 2019) searched 2D/3D/P3D segmentation network.",
    references=(
        "Zhu, Z., et al.: V-NAS: Neural Architecture Search for Volumetric Medical Image Segmentation. 3DV 2019.",
    ),
    notes=("the weights carry the architecture's codes (`arch_code`): the network refuses weights of another "
           "architecture with a `ValueError`, even when loaded with `strict=False`.",),
    # ONNX has no memory-format ops: plain NCDHW conv3d
    onnx_overrides="--network_def#conv_impl conv3d --network_def#memory_format preserve",
)
