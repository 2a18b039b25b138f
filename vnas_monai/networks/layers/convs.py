"""The one conv-norm-act factory behind every layer of the search spaces, parametrised by kernel shape.

Kernel shapes are (x, y, z) with z the slice axis, matching MONAI's (N, C, H, W, D) layout: a 2D layer is (3, 3, 1),
a 3D layer (3, 3, 3), a pseudo-3D (P3D) pair (3, 3, 1) then (1, 1, 3). Padding is derived from the kernel and the
dilation ("same" for odd kernels), never passed by hand. Dilated, grouped (depthwise) and transposed convolutions
(NAS-3D-U-Net's ops, Wang 2019, Table 1) are the same factory with ``dilation``, ``groups`` and ``transposed``.

Every convolution is a :class:`SliceConv3d`: an ``nn.Conv3d`` (same parameters, same ``state_dict`` keys) that can run
its kernel in several exact forms (:class:`ConvImpl`) and in either memory layout (:class:`ConvMemoryFormat`). Which
form ``impl="auto"`` runs is the measured-fastest one for the kernel, the device and the layout (:data:`AUTO_TABLE`);
``benchmarks/bench_search.py`` re-measures the whole search step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.layers.utils import get_act_layer, get_norm_layer
from monai.utils import StrEnum

__all__ = [
    "AUTO_TABLE",
    "ConvImpl",
    "ConvMemoryFormat",
    "SliceConv3d",
    "ConvNormAct",
    "auto_form",
    "kernel_kind",
    "same_padding",
    "as_triple",
]

LayerSpec = Union[str, tuple, None]


class ConvImpl(StrEnum):
    """How a :class:`SliceConv3d` computes its convolution. Every form computes the same function with the same
    weights (equal to ``conv3d`` within float32 rounding: only the order of the multiply-accumulates differs); a form
    that does not apply to a kernel falls back to ``conv3d``.

    - ``auto``: the measured-fastest form for the kernel kind, the device and the memory layout (:data:`AUTO_TABLE`).
    - ``conv3d``: ``torch.nn.functional.conv3d`` on the tensors as they come (the naive reference).
    - ``slices``: an in-plane (kx, ky, 1) kernel as ``conv2d`` over slices, the depth folded into the batch
      (N, C, H, W, D) -> (N*D, C, H, W) (a copy in and out).
    - ``matmul``: a 1x1x1 stride-1 kernel as one matrix product over the channels (``F.linear`` on the
      (N, H, W, D, C) view; free for channels-last tensors).
    - ``dilated``: an in-plane (kx, ky, 1) stride-1 kernel as ``conv2d`` over the (N, C, H, W*D) view with dilation
      (1, D) and padding (px, py*D): neighbours along W are D apart in the flattened axis, and the zero padding of D
      columns on either side is exactly the zero padding of one column of W (a view, no copy, in either layout).
    - ``planes``: a through-plane (1, 1, kz) stride-1 kernel as ``conv2d`` over the (N, C, H*W, D) view (no copy).
    """

    AUTO = "auto"
    CONV3D = "conv3d"
    SLICES = "slices"
    MATMUL = "matmul"
    DILATED = "dilated"
    PLANES = "planes"


class ConvMemoryFormat(StrEnum):
    """The memory layout a :class:`SliceConv3d` computes in.

    - ``preserve``: the layout of the input (``channels_last_3d`` if the input is strictly channels-last, else
      NCDHW); the output has the input's layout.
    - ``channels_last``: convert the input (a no-op when it already is) and compute in ``channels_last_3d``
      (N, H, W, D, C in memory); the output is channels-last, so the norm, activation, pooling and concatenation
      after it stay channels-last and the next convolution converts nothing.
    - ``auto``: on CPU, ``channels_last`` (measured faster in float32, and in bfloat16 without gradients, i.e. in
      inference and evaluation). Under bfloat16 training NCDHW, unless ``bf16_training_channels_last`` is set
      (:func:`vnas_monai.networks.layers.set_bf16_training_layout`: wide networks, where channels-last wins; in
      narrow ones the channels-last batch norms over odd channel counts cost more than the convolutions gain).
      ``preserve`` elsewhere (not measured here; ``benchmarks/bench_search.py`` measures it on a GPU).
    """

    PRESERVE = "preserve"
    CHANNELS_LAST = "channels_last"
    AUTO = "auto"


_KINDS = ("pointwise", "in_plane", "in_plane_strided", "through_plane", "full")

#: The form ``impl="auto"`` runs, by device regime and kernel kind (:func:`kernel_kind`).
#:
#: Measured with torch 2.13 (CPU build, oneDNN) on the project's 2-core x86 CPU, float32, forward + input and weight
#: gradients of every distinct convolution of the supernet (``init_filters`` 8 and 16, 64x64x32 patch, batch 2), the
#: output returned in the layout of the input, best of repeated interleaved runs (1 and 2 threads):
#:
#: - **1x1x1** on channels-last tensors: ``matmul`` is 2.5x to 5x faster than ``conv3d`` in either layout
#:   (e.g. 26->20 channels at 32x32x16: 3.8 ms against 8.0 ms NCDHW and 19.9 ms channels-last ``conv3d``;
#:   256->64 at 4x4x2: 0.34 ms against 1.8 ms). On NCDHW tensors it needs two transposing copies and wins only
#:   for wide inputs, so NCDHW keeps ``conv3d``.
#: - **3x3x1** on channels-last tensors: ``dilated`` is 0 to 25 % faster than ``conv3d`` (20->5 channels at 32x32x16:
#:   9.3 ms against 9.5 ms; 5->5: 3.2 against 4.2 ms; at 4x4x2 and below they are equal). On NCDHW tensors
#:   ``dilated`` is 2x slower than ``conv3d``. ``slices`` (the former default, 2x to 6x faster with older PyTorch) is
#:   now 0.8x to 1.3x of ``conv3d`` in NCDHW and slower than channels-last ``conv3d`` everywhere.
#: - **3x3x3, 1x1x3, strided 3x3x1 and 7x7x1**: ``conv3d`` in the given layout is the fastest form (``planes`` for
#:   1x1x3 is 0.9x to 1.1x of it, TH's unfold-and-GEMM ``slow_conv3d`` 1.2x to 8x slower).
#: - **Layout**: channels-last ``conv3d`` itself is 1x to 4x faster than NCDHW ``conv3d`` at the half-resolution
#:   levels (3x3x3 20->5 channels at 32x32x16: 20 ms against 41 ms; 3x3x1 5->5: 4.2 ms against 9.2 ms) and equal in
#:   the deep, small levels; NCDHW ``conv3d`` with two threads also has slow oneDNN backward kernels for some
#:   channel counts (1x1x1 128->32 at 8x8x4: up to 20x the channels-last time). Hence ``ConvMemoryFormat.AUTO``
#:   computes channels-last on CPU.
#:
#: - **bfloat16 under CPU autocast** (the ``precision: auto`` default on AMX CPUs): ``conv3d`` is the fastest form of
#:   every kind in either layout (oneDNN's AMX kernels). NCDHW, summed forward + backward of every distinct
#:   convolution of the supernet (``init_filters`` 16, 64x64x64, batch 2, 1 thread), ``conv3d`` / alternative:
#:   pointwise 258 ms / 372 ms ``matmul``, 272 ms ``dilated``; in-plane 134 ms / 136 ms ``dilated``, 209 ms
#:   ``slices``; through-plane 39 ms / 40 ms ``planes``; strided in-plane 28 ms / 34 ms ``slices``. Channels-last
#:   (bf16 inference, and training under :func:`~vnas_monai.networks.layers.computing_layout`): the whole search step
#:   with ``matmul`` for 1x1x1 or ``dilated`` for 3x3x1 was 3-5 % slower than with ``conv3d`` for every kind, the
#:   hippocampus retraining step (32x64x32, batch 2) 2 % slower (1 thread, interleaved in one process).
#:
#: On CUDA nothing is measured here: ``conv3d`` (cuDNN) for every kernel, in the given layout.
AUTO_TABLE: dict[str, dict[str, str]] = {
    "cpu_channels_last": {
        "pointwise": "matmul",
        "in_plane": "dilated",
        "in_plane_strided": "conv3d",
        "through_plane": "conv3d",
        "full": "conv3d",
    },
    "cpu_channels_last_bf16": {k: "conv3d" for k in _KINDS},
    "cpu": {k: "conv3d" for k in _KINDS},
    "other": {k: "conv3d" for k in _KINDS},
}

#: which forms compute which kernel kinds (a form asked for another kind falls back to conv3d)
_APPLIES: dict[str, tuple[str, ...]] = {
    "conv3d": ("pointwise", "in_plane", "in_plane_strided", "through_plane", "full", "other"),
    "slices": ("pointwise", "in_plane", "in_plane_strided"),
    "matmul": ("pointwise",),
    "dilated": ("pointwise", "in_plane"),
    "planes": ("pointwise", "through_plane"),
}


def as_triple(value: int | Sequence[int], name: str = "kernel_size") -> tuple[int, int, int]:
    if isinstance(value, int):
        return (value, value, value)
    value = tuple(int(v) for v in value)
    if len(value) != 3:
        raise ValueError(f"{name} must be an int or 3 ints (x, y, z), got {value}.")
    return value  # type: ignore[return-value]


def same_padding(kernel_size: Sequence[int], dilation: int | Sequence[int] = 1) -> tuple[int, int, int]:
    """'Same' padding of an odd kernel, ``dilation * (k - 1) / 2`` per axis; even kernels are refused rather than
    silently shifting the output."""
    if any(k % 2 == 0 for k in kernel_size):
        raise ValueError(f"kernel_size {tuple(kernel_size)} must be odd in every axis for 'same' padding.")
    dil = (dilation,) * len(kernel_size) if isinstance(dilation, int) else tuple(int(d) for d in dilation)
    if len(dil) != len(kernel_size) or any(d < 1 for d in dil):
        raise ValueError(f"dilation {dilation} must be a positive int or one per kernel axis {tuple(kernel_size)}.")
    return tuple(d * (k - 1) // 2 for k, d in zip(kernel_size, dil))  # type: ignore[return-value]


def kernel_kind(conv: nn.Conv3d) -> str:
    """Classify a ``Conv3d`` for :data:`AUTO_TABLE`: ``"pointwise"`` (1x1x1, stride 1), ``"in_plane"`` ((kx, ky, 1),
    stride 1), ``"in_plane_strided"`` ((kx, ky, 1), stride (sx, sy, 1)), ``"through_plane"`` ((1, 1, kz), stride 1),
    ``"full"`` (anything else without groups, e.g. 3x3x3), or ``"other"`` (groups, non-zero padding modes)."""
    k, st, pd, dl = conv.kernel_size, conv.stride, conv.padding, conv.dilation
    if conv.groups != 1 or conv.padding_mode != "zeros" or isinstance(pd, str):
        return "other"
    if k[2] == 1 and st[2] == 1 and pd[2] == 0 and dl == (1, 1, 1):
        if k[:2] == (1, 1) and st == (1, 1, 1) and pd == (0, 0, 0):
            return "pointwise"
        return "in_plane" if st == (1, 1, 1) else "in_plane_strided"
    if k[:2] == (1, 1) and st == (1, 1, 1) and pd[:2] == (0, 0) and dl == (1, 1, 1):
        return "through_plane"
    return "full"


def auto_form(kind: str, device_type: str, channels_last: bool, bf16: bool = False) -> str:
    """The form ``impl="auto"`` runs for a kernel ``kind`` on ``device_type`` in the given layout (``bf16``: under
    CPU bfloat16 autocast)."""
    regime = "cpu" if device_type == "cpu" else "other"
    if regime == "cpu" and channels_last:
        regime = "cpu_channels_last_bf16" if bf16 else "cpu_channels_last"
    return AUTO_TABLE[regime].get(kind, "conv3d")


class SliceConv3d(nn.Conv3d):
    """``nn.Conv3d`` (same parameters, same ``state_dict``) that runs its kernel in the form ``impl`` and the memory
    layout ``memory_format``; every combination computes the same function (within float32 rounding).

    Args:
        *args, **kwargs: as ``nn.Conv3d``.
        impl: a :class:`ConvImpl`; ``"auto"`` picks by kernel kind, device and layout (:data:`AUTO_TABLE`).
        memory_format: a :class:`ConvMemoryFormat` (``"preserve"`` by default; ``VNASBackbone`` sets ``"auto"``).

    Shapes: (N, C, H, W, D) -> (N, C', H', W', D'), as ``nn.Conv3d``; the output is channels-last when computed so.
    """

    def __init__(self, *args, impl: str = ConvImpl.AUTO, memory_format: str = ConvMemoryFormat.PRESERVE, **kwargs):
        super().__init__(*args, **kwargs)
        self.impl = str(ConvImpl(impl))
        self.memory_format = str(ConvMemoryFormat(memory_format))
        self.bf16_training_channels_last = False  # "auto" under CPU bf16 training: see ConvMemoryFormat
        self.kind = kernel_kind(self)
        # integer padding for the 2D forms (``self.padding`` may be a string for the generic conv3d form)
        self.pad3 = [0, 0, 0] if isinstance(self.padding, str) else [int(p) for p in self.padding]
        # the forms that compute this kernel (a list: TorchScript has no module-level tables)
        self.applicable = [form for form, kinds in _APPLIES.items() if self.kind in kinds]
        # the auto choice per regime, resolved once (TorchScript has no module-level tables)
        self.auto_cpu_cl = auto_form(self.kind, "cpu", True)
        self.auto_cpu_cl_bf16 = auto_form(self.kind, "cpu", True, bf16=True)
        self.auto_cpu = auto_form(self.kind, "cpu", False)
        self.auto_other = auto_form(self.kind, "cuda", False)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, impl={self.impl}, memory_format={self.memory_format}"

    @torch.jit.unused
    def _cpu_bf16_autocast(self) -> bool:
        return torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16

    def _cpu_bf16(self) -> bool:
        if torch.jit.is_scripting():  # TorchScript skips the branch below only behind an `if`
            return False
        return self._cpu_bf16_autocast()

    def _bf16_height_bug(self, x: torch.Tensor) -> bool:
        return x.device.type == "cpu" and self.kernel_size[0] > x.shape[2] > 1 and self._cpu_bf16()

    @torch.jit.unused
    def _conv_fp32(self, x, w):  # unannotated: TorchScript reads the signature of unused methods as Tensors
        # torch 2.13's oneDNN bf16 Conv3d backward returns non-finite weight gradients for kernels 3 high on inputs
        # 2 high (V-NAS's 1/16 level of a 32-voxel axis; every layout, 3x3x1 and 3x3x3 alike, only the first spatial
        # axis): such tiny convolutions run in float32, and return to bf16 after
        bias = None if self.bias is None else self.bias.float()
        with torch.autocast("cpu", enabled=False):
            y = self._conv_forward(x.float(), w.float(), bias)
        return y.to(torch.bfloat16)

    def channels_last_for(self, x: torch.Tensor, bf16: Optional[bool] = None) -> bool:
        """Whether this call computes channels-last (see :class:`ConvMemoryFormat`); ``bf16``: whether CPU bf16
        autocast is on (asked here when not given)."""
        if self.memory_format == "channels_last":
            return True
        if self.memory_format == "auto" and x.device.type == "cpu":
            return self.bf16_training_channels_last or not (
                torch.is_grad_enabled() and (self._cpu_bf16() if bf16 is None else bf16))
        # "preserve" (or "auto" off CPU): strictly channels-last inputs only (C = 1 inputs are both)
        return x.dim() == 5 and x.is_contiguous(memory_format=torch.channels_last_3d) and not x.is_contiguous()

    def form_for(self, x: torch.Tensor, channels_last: bool, bf16: Optional[bool] = None) -> str:
        """The form this call runs: ``impl``, or the :data:`AUTO_TABLE` entry; ``conv3d`` where it does not apply."""
        form = self.impl
        if form == "auto":
            if x.device.type == "cpu":
                form = self.auto_cpu
                if channels_last:
                    form = self.auto_cpu_cl_bf16 if (self._cpu_bf16() if bf16 is None else bf16) else self.auto_cpu_cl
            else:
                form = self.auto_other
        return form if form in self.applicable else "conv3d"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bf16 = x.device.type == "cpu" and self._cpu_bf16()  # asked once per call: the search step's hot path
        channels_last = self.channels_last_for(x, bf16)
        form = self.form_for(x, channels_last, bf16)
        w = self.weight
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
            if x.is_contiguous():  # both layouts (1 channel or 1 voxel): oneDNN reads the layout from the strides,
                # and NCDHW ones made the stem's bf16 7x7x1 conv of the image 2.5x slower (channels-last output)
                x = x.new_empty(x.movedim(1, -1).shape).movedim(-1, 1).copy_(x)
        if form == "matmul":
            # (N, H, W, D, C) @ (C, C')^T: a free view of a channels-last tensor
            y = F.linear(x.movedim(1, -1), w.flatten(1), self.bias).movedim(-1, 1)
        elif form == "dilated":
            d, wd = x.shape[4], x.shape[3]
            y = F.conv2d(
                x.flatten(3, 4),
                w[:, :, :, :, 0],
                self.bias,
                [1, 1],
                [self.pad3[0], self.pad3[1] * d],
                [1, d],
            ).unflatten(3, [wd, d])
        elif form == "planes":
            h, wd = x.shape[2], x.shape[3]
            y = F.conv2d(x.flatten(2, 3), w[:, :, 0], self.bias, [1, 1], [0, self.pad3[2]]).unflatten(2, [h, wd])
        elif form == "slices":
            n, c, h, wd, d = x.shape
            s = x.permute(0, 4, 1, 2, 3).reshape(n * d, c, h, wd)
            s = F.conv2d(
                s,
                w[:, :, :, :, 0],
                self.bias,
                [self.stride[0], self.stride[1]],
                [self.pad3[0], self.pad3[1]],
                [self.dilation[0], self.dilation[1]],
            )
            y = s.reshape(n, d, s.shape[1], s.shape[2], s.shape[3]).permute(0, 2, 3, 4, 1)
        else:
            if self._bf16_height_bug(x):
                y = self._conv_fp32(x, w)
            else:
                y = self._conv_forward(x, w, self.bias)
        return y.contiguous(memory_format=torch.channels_last_3d) if channels_last else y.contiguous()


class ConvNormAct(nn.Module):
    """Conv + norm + activation with the kernel shape as the only thing that makes it 2D, 3D or one half of P3D.

    Args:
        spatial_dims: must be 3 (V-NAS chooses between in-plane and volumetric kernels of 3D images).
        in_channels: input channels C.
        out_channels: output channels C'.
        kernel_size: (x, y, z) kernel, e.g. (3, 3, 1), (3, 3, 3), (1, 1, 3); an int means a cube.
        stride: (x, y, z) stride.
        act: MONAI activation spec (``"relu"``, ``("leakyrelu", {"negative_slope": 0.01})``) or None.
        norm: MONAI norm spec (``"batch"``, ``("instance", {"affine": True})``, ``("group", {"num_groups": 8})``)
            or None.
        preact: norm and activation before the conv (DenseNet / AH-Net decoder order) instead of after (ResNet).
        bias: conv bias; by default only when there is no norm after the conv.
        conv_impl: a ``ConvImpl`` (``"auto"``: the measured-fastest exact form, see ``AUTO_TABLE``).
        memory_format: a ``ConvMemoryFormat`` for the conv (``VNASBackbone`` sets it for the whole network).
        dilation: (x, y, z) dilation; the padding keeps the "same" size (``dilation * (k - 1) / 2``).
        groups: conv groups (``groups == in_channels``: a depthwise convolution); both channel counts must be
            multiples of it.
        transposed: an ``nn.ConvTranspose3d`` (same ``conv.weight`` / ``conv.bias`` keys) that multiplies the size by
            the stride (``output_padding = stride - 1``); ``conv_impl`` and ``memory_format`` do not apply to it.

    Shapes: (N, C, H, W, D) -> (N, C', ceil(H/sx), ceil(W/sy), ceil(D/sz)); transposed: (N, C', H*sx, W*sy, D*sz).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int] = 3,
        stride: int | Sequence[int] = 1,
        act: LayerSpec = "relu",
        norm: LayerSpec = "batch",
        preact: bool = False,
        bias: bool | None = None,
        conv_impl: str = ConvImpl.AUTO,
        memory_format: str = ConvMemoryFormat.PRESERVE,
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        transposed: bool = False,
    ) -> None:
        super().__init__()
        if spatial_dims != 3:
            raise ValueError(f"spatial_dims must be 3 for V-NAS layers (x, y, z kernels), got {spatial_dims}.")
        kernel = as_triple(kernel_size)
        stride = as_triple(stride, "stride")
        dilation = as_triple(dilation, "dilation")
        groups = int(groups)
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(f"groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}.")
        if bias is None:
            bias = norm is None or preact
        self.preact = bool(preact)
        padding = same_padding(kernel, dilation)
        self.conv: nn.Module
        if transposed:
            self.conv = nn.ConvTranspose3d(
                in_channels,
                out_channels,
                kernel,
                stride=stride,
                padding=padding,
                output_padding=tuple(s - 1 for s in stride),
                groups=groups,
                bias=bias,
                dilation=dilation,
            )
        else:
            self.conv = SliceConv3d(
                in_channels,
                out_channels,
                kernel,
                stride=stride,
                padding=padding,
                dilation=dilation,
                groups=groups,
                bias=bias,
                impl=conv_impl,
                memory_format=memory_format,
            )
        norm_ch = in_channels if preact else out_channels
        self.norm = get_norm_layer(name=norm, spatial_dims=3, channels=norm_ch) if norm is not None else nn.Identity()
        self.act = get_act_layer(name=act) if act is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # An explicit order: TorchScript shares compiled code between Sequentials holding the same children in a
        # different order, which silently ran pre-activation layers post-activation.
        if self.preact:
            return self.conv(self.act(self.norm(x)))
        return self.act(self.norm(self.conv(x)))
