"""The V-NAS encoder-decoder topology, shared by the supernet and the discrete network (paper Fig. 1).

Zhu et al., "V-NAS", 3DV 2019, after AH-Net (Liu et al., MICCAI 2018). Layout, for an input (N, C, H, W, D):

    stem            7x7x1 s(2,2,1), 1x1x3, pool (1,1,2)        -> F        @ 1/2   (skip s0)
    pool            max 2x2x2                                   -> F        @ 1/4   (skip s1)
    layer1..layer4  3, 4, 6, 3 searchable bottleneck cells      -> 4F..32F  @ 1/4, 1/8, 1/16, 1/32
    decoder0..2     up x2 + skip (layer3, layer2, layer1), searchable dense block
    decoder3        projection + skip (pooled stem), searchable dense block
    decoder4        up x2 + skip (stem), searchable dense block @ 1/2
    pvp, head       pyramid volumetric pooling, 3x3x1 conv to logits, up x2          -> out @ 1/1
    refine          optional full-resolution stage (not in the paper)                 -> out @ 1/1
    ds_heads        optional deep-supervision heads (1x1x1) on decoder3 @ 1/4 and decoder1 @ 1/8 (training only)

so every spatial size must be a multiple of 32. With ``init_filters`` F = 64 the widths are ResNet-50's.
The two subclasses differ only in which candidates each cell holds and how they are weighted; module names are
identical, so ``state_dict`` keys of the discrete network are a subset of the supernet's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from vnas_monai.networks.layers import (
    ConvImpl,
    ConvMemoryFormat,
    MaxPool3d,
    set_bf16_training_layout,
    set_conv_memory_format,
)

from .decoder import PVP, DecoderCell, FinalHead, FullResolutionRefine, Transition
from .encoder import EncoderCell, Stem
from .encoding import ENCODER_GROUPS, NUM_DECODER_BLOCKS, NUM_ENCODER_CELLS

__all__ = ["VNASBackbone", "DIVISOR", "BF16_TRAINING_CL_MIN_FILTERS"]

#: from this ``init_filters`` on, ``memory_format="auto"`` computes channels-last in CPU bf16 training too (measured
#: faster from 32 on, slower at 16: ``vnas_monai.networks.layers.set_bf16_training_layout``)
BF16_TRAINING_CL_MIN_FILTERS = 32

#: Every spatial size must be a multiple of this (stem /2, pool /2, three stride-2 stages).
DIVISOR = 32
_STAGE_STRIDES = (1, 2, 2, 2)
_EXPANSION = 4


class VNASBackbone(nn.Module):
    """Encoder-decoder whose 16 encoder cells and 5 decoder blocks hold the given candidates.

    Args:
        encoder_ops: 16 sequences of candidate names/codes, one per encoder cell.
        decoder_ops: 5 sequences of candidate names/codes, one per decoder block.
        spatial_dims: must be 3.
        in_channels: image channels C.
        out_channels: classes (logit channels), background included.
        init_filters: stem width F; stage widths are 4F, 8F, 16F, 32F (F = 64 is ResNet-50).
        act, norm: MONAI layer specs, e.g. ``"relu"``, ``("batch", {"momentum": 0.1})``.
        dense_layers: dense layers per decoder block (AH-Net: 3).
        dense_growth: growth rate of the dense layers; default ``max(2, 20 * F // 64)`` (AH-Net: 20 at F = 64).
        dense_bn_size: bottleneck factor of the dense layers (AH-Net: 4).
        pvp_pool_sizes: in-plane pool windows of the PVP block (AH-Net: 8, 16, 32, 64).
        upsample_mode: ``"transpose"``, ``"trilinear"`` or ``"nearest"``.
        checkpointing: recompute each mixed operation in backward to save memory.
        zero_init_residual: start every encoder cell as the identity by zeroing the scale of each candidate's last
            norm (Goyal et al., 2017; timm's ``zero_init_last``). Retraining from scratch converges much faster
            (hippocampus, F = 16: held-out Dice 0.71/0.73 instead of 0.53/0.57 after 200 steps). The supernet
            keeps it off: its cells would output 0 at first and alpha would get no gradient.
        full_resolution_channels: width of a :class:`FullResolutionRefine` stage at the input grid after the head
            (0, the default: the paper's network, whose decoder ends at 1/2 resolution). For structures a few voxels
            thick, e.g. 8.
        full_resolution_features: the full-resolution stage also sees the decoder's last features, lifted to the
            input grid (a U-Net's top-level skip; see :class:`FullResolutionRefine`); needs
            ``full_resolution_channels`` > 0.
        deep_supervision: auxiliary outputs in training mode (nnU-Net's deep supervision; 0, the default: none). They
            are, in this order and as many as asked: the head's logits before the full-resolution stage (when there
            is one), then 1x1x1 heads on ``decoder3`` (1/4 of the grid) and ``decoder1`` (1/8), each upsampled
            (trilinear) to the input grid. A training-mode forward then returns (N, 1 + deep_supervision,
            out_channels, H, W, D), the final logits first (as MONAI's ``DynUNet``); evaluation mode returns the
            logits alone.
        conv_impl: how the convolutions run (a ``ConvImpl``; ``"auto"``: the measured-fastest exact form per kernel
            and device, ``"conv3d"``: plain ``F.conv3d``).
        memory_format: the layout the network computes in (a ``ConvMemoryFormat``): ``"auto"`` (channels-last on
            CPU, where it was measured faster: always from ``init_filters`` 32 on, NCDHW in bf16 training below;
            as given elsewhere), ``"channels_last"``, or ``"preserve"`` (the input's layout, NCDHW for a plain
            tensor). Outputs are equal within float32 rounding in every layout.

    Shapes: (N, C, H, W, D) -> (N, out_channels, H, W, D), each of H, W, D a multiple of 32 (with deep supervision
    in training mode: (N, 1 + deep_supervision, out_channels, H, W, D)).
    """

    def __init__(
        self,
        encoder_ops: Sequence[Sequence[int | str]],
        decoder_ops: Sequence[Sequence[int | str]],
        spatial_dims: int = 3,
        in_channels: int = 1,
        out_channels: int = 2,
        init_filters: int = 64,
        act: str | tuple = "relu",
        norm: str | tuple = "batch",
        dense_layers: int = 3,
        dense_growth: Optional[int] = None,
        dense_bn_size: int = 4,
        pvp_pool_sizes: Sequence[int] = (8, 16, 32, 64),
        upsample_mode: str = "transpose",
        checkpointing: bool = False,
        zero_init_residual: bool = False,
        full_resolution_channels: int = 0,
        full_resolution_features: bool = False,
        deep_supervision: int = 0,
        conv_impl: str = ConvImpl.AUTO,
        memory_format: str = ConvMemoryFormat.AUTO,
    ) -> None:
        super().__init__()
        if spatial_dims != 3:
            raise ValueError(f"spatial_dims must be 3 (V-NAS searches 2D, 3D and P3D kernels), got {spatial_dims}.")
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels), ("init_filters", init_filters)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}.")
        if len(encoder_ops) != NUM_ENCODER_CELLS or len(decoder_ops) != NUM_DECODER_BLOCKS:
            raise ValueError(
                f"need {NUM_ENCODER_CELLS} encoder and {NUM_DECODER_BLOCKS} decoder cells, "
                f"got {len(encoder_ops)} and {len(decoder_ops)}."
            )
        if upsample_mode not in ("transpose", "trilinear", "nearest"):
            raise ValueError(f"upsample_mode must be 'transpose', 'trilinear' or 'nearest', got {upsample_mode!r}.")
        f = init_filters
        growth = dense_growth if dense_growth is not None else max(2, 20 * f // 64)
        conv_impl = str(ConvImpl(conv_impl))
        cell_kw = dict(act=act, norm=norm, checkpointing=checkpointing, conv_impl=conv_impl)

        self.stem = Stem(in_channels, f, act, norm, conv_impl)
        self.pool = MaxPool3d(2, 2)
        cells, in_ch, i = [], f, 0
        self.stage_channels: list[int] = []
        for stage, (n_cells, stride) in enumerate(zip(ENCODER_GROUPS, _STAGE_STRIDES)):
            planes = f * 2**stage
            stage_cells = []
            for j in range(n_cells):
                stage_cells.append(
                    EncoderCell(in_ch, planes, stride if j == 0 else 1, encoder_ops[i], expansion=_EXPANSION, **cell_kw)
                )
                in_ch, i = planes * _EXPANSION, i + 1
            cells.append(nn.ModuleList(stage_cells))
            self.stage_channels.append(in_ch)
        self.layer1, self.layer2, self.layer3, self.layer4 = cells

        c1, c2, c3, c4 = self.stage_channels
        dense_kw = dict(num_layers=dense_layers, growth=growth, bn_size=dense_bn_size, **cell_kw)
        # (transition in -> out channels, upsample) for decoder blocks 0..4; skips: layer3, layer2, layer1, pool, stem.
        self.up0 = Transition(c4, c3, act, norm, upsample_mode)
        self.decoder0 = DecoderCell(c3, decoder_ops[0], **dense_kw)
        self.up1 = Transition(self.decoder0.out_channels, c2, act, norm, upsample_mode)
        self.decoder1 = DecoderCell(c2, decoder_ops[1], **dense_kw)
        self.up2 = Transition(self.decoder1.out_channels, c1, act, norm, upsample_mode)
        self.decoder2 = DecoderCell(c1, decoder_ops[2], **dense_kw)
        self.up3 = Transition(self.decoder2.out_channels, f, act, norm, None)
        self.decoder3 = DecoderCell(f, decoder_ops[3], **dense_kw)
        self.up4 = Transition(self.decoder3.out_channels, f, act, norm, upsample_mode)
        self.decoder4 = DecoderCell(f, decoder_ops[4], **dense_kw)
        self.pvp = PVP(self.decoder4.out_channels, pvp_pool_sizes)
        self.head = FinalHead(self.decoder4.out_channels + len(pvp_pool_sizes), out_channels, act, norm, upsample_mode)
        if not isinstance(full_resolution_channels, int) or full_resolution_channels < 0:
            raise ValueError(f"full_resolution_channels must be an int >= 0, got {full_resolution_channels!r}.")
        if full_resolution_features and not full_resolution_channels:
            raise ValueError("full_resolution_features needs a full-resolution stage: set full_resolution_channels > 0")
        head_in = self.decoder4.out_channels + len(pvp_pool_sizes)
        self.refine = (
            FullResolutionRefine(in_channels, out_channels, full_resolution_channels, act, norm, conv_impl,
                                 feature_channels=head_in if full_resolution_features else 0)
            if full_resolution_channels else None
        )
        n_aux = 3 if self.refine is not None else 2
        if not isinstance(deep_supervision, int) or not 0 <= deep_supervision <= n_aux:
            raise ValueError(f"deep_supervision must be an int in [0, {n_aux}] (auxiliary outputs: pre-refine logits "
                             f"when full_resolution_channels > 0, decoder3, decoder1), got {deep_supervision!r}.")
        self.ds_pre_refine = self.refine is not None and deep_supervision > 0
        ds_in = [self.decoder3.out_channels, self.decoder1.out_channels][: deep_supervision - self.ds_pre_refine]
        self.ds_heads = nn.ModuleList([nn.Conv3d(c, out_channels, 1) for c in ds_in])
        self._init_weights(zero_init_residual)
        set_conv_memory_format(self, memory_format)
        set_bf16_training_layout(self, init_filters >= BF16_TRAINING_CL_MIN_FILTERS)

    def _init_weights(self, zero_init_residual: bool = False) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm3d, nn.GroupNorm, nn.InstanceNorm3d)) and m.weight is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for cell in (c for layer in (self.layer1, self.layer2, self.layer3, self.layer4) for c in layer):
                for branch in cell.mixed.ops.values():
                    norm = getattr(branch.expand.norm, "weight", None)
                    if norm is not None:
                        nn.init.zeros_(norm)
        if self.refine is not None:
            self.refine.reset_out()

    @torch.jit.unused
    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` unless x is (N, C, H, W, D) with each spatial size a multiple of 32."""
        if x.dim() != 5:
            raise ValueError(f"V-NAS expects a 5D input (N, C, H, W, D), got shape {list(x.shape)}.")
        for s in x.shape[2:]:
            if s % DIVISOR != 0:
                raise ValueError(
                    f"V-NAS needs every spatial size divisible by {DIVISOR} (stem /2, pool /2, three stride-2 stages), "
                    f"got {list(x.shape[2:])}; pad or crop the patch, e.g. roi_size (96, 96, 64) or (64, 64, 64)."
                )

    @staticmethod
    def _row(weights: Optional[torch.Tensor], i: int) -> Optional[torch.Tensor]:
        return weights[i] if weights is not None else None

    @staticmethod
    def _pick(index: Optional[list[int]], i: int) -> Optional[int]:
        return index[i] if index is not None else None

    def run(
        self,
        x: torch.Tensor,
        alpha: Optional[torch.Tensor] = None,
        beta: Optional[torch.Tensor] = None,
        enc_index: Optional[list[int]] = None,
        dec_index: Optional[list[int]] = None,
    ) -> torch.Tensor:
        """Forward with optional mixing weights alpha (16, K), beta (5, K) and sampled candidate indices.

        Written without Python lists of modules so that the discrete network compiles with TorchScript.
        """
        if not torch.jit.is_scripting():
            self.check_input(x)
        s0 = self.stem(x)
        s1 = self.pool(s0)
        h, i = s1, 0
        for cell in self.layer1:
            h = cell(h, self._row(alpha, i), self._pick(enc_index, i))
            i += 1
        f1 = h
        for cell in self.layer2:
            h = cell(h, self._row(alpha, i), self._pick(enc_index, i))
            i += 1
        f2 = h
        for cell in self.layer3:
            h = cell(h, self._row(alpha, i), self._pick(enc_index, i))
            i += 1
        f3 = h
        for cell in self.layer4:
            h = cell(h, self._row(alpha, i), self._pick(enc_index, i))
            i += 1
        h = self.decoder0(self.up0(h) + f3, self._row(beta, 0), self._pick(dec_index, 0))
        h = self.decoder1(self.up1(h) + f2, self._row(beta, 1), self._pick(dec_index, 1))
        d1 = h
        h = self.decoder2(self.up2(h) + f1, self._row(beta, 2), self._pick(dec_index, 2))
        h = self.decoder3(self.up3(h) + s1, self._row(beta, 3), self._pick(dec_index, 3))
        d3 = h
        h = self.decoder4(self.up4(h) + s0, self._row(beta, 4), self._pick(dec_index, 4))
        h = torch.cat([self.pvp(h), h], 1)
        logits = self.head(h)
        aux: list[torch.Tensor] = []
        if self.training and self.ds_pre_refine:
            aux.append(logits)
        if self.refine is not None:
            logits = self.refine(x, logits, h)
        if self.training and len(self.ds_heads) > 0:
            feats = [d3, d1]
            for j, head in enumerate(self.ds_heads):
                aux.append(F.interpolate(head(feats[j]), size=logits.shape[2:], mode="trilinear", align_corners=False))
        if len(aux) > 0:
            return torch.stack([logits] + aux, dim=1)
        return logits
