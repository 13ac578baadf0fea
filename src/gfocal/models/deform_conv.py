"""Deformable convolution (DCN v1) and modulated deformable convolution (DCN v2) as mmcv lays them out.

A deformable 3x3 conv samples its input at the kernel's grid points moved by learned offsets; DCN v2
also weighs each sample by a learned mask in (0, 1). Offsets and mask come from a plain conv on the same
input (``conv_offset``), zero-initialised, so the layer starts as a plain conv (v1) or half of one
(v2: sigmoid(0) = 0.5) and ImageNet weights of the plain conv load into ``weight`` unchanged. The
sampling is ``torchvision.ops.deform_conv2d``; no compiled mmcv is needed.

Tensor and key names are mmcv's ``DeformConv2dPack`` (``type='DCN'``) and
``ModulatedDeformConv2dPack`` (``type='DCNv2'``): ``weight`` [O, I/groups, k, k], ``conv_offset.weight``,
``conv_offset.bias`` (and ``bias`` [O] when asked for), so mmdetection checkpoints load by name.

Shape letters: ``N`` images, ``I``/``O`` input/output channels, ``k`` kernel size, ``G`` deform groups,
``H``/``W`` input and ``h``/``w`` output size.

Reference: Dai et al., Deformable Convolutional Networks (ICCV 2017); Zhu et al., Deformable ConvNets
v2: More Deformable, Better Results (CVPR 2019).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torchvision.ops import deform_conv2d

__all__ = ["DeformConv2d", "make_deformable"]


class DeformConv2d(nn.Module):
    """A k x k (modulated) deformable conv whose offsets (and mask) are predicted from its input.

    Args:
        in_channels, out_channels: I and O.
        kernel_size, stride, padding, dilation, groups: as ``nn.Conv2d`` (square kernels).
        deform_groups: G, channel groups that share one set of offsets (mmdetection's GFL: 1).
        bias: learn an output bias (mmdetection's ResNet convs: none).
        modulated: DCN v2 (offsets and a sigmoid mask, 3*G*k*k offset-conv outputs) when True,
            DCN v1 (offsets only, 2*G*k*k outputs; mmdetection's GFL zoo) when False.

    Input: Tensor[N, I, H, W]. Output: Tensor[N, O, h, w], h and w as ``nn.Conv2d`` gives them.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int = 1,
        dilation: int = 1,
        groups: int = 1,
        deform_groups: int = 1,
        bias: bool = False,
        modulated: bool = False,
    ) -> None:
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"in_channels={in_channels} and out_channels={out_channels} must divide by groups={groups}"
            )
        if in_channels % deform_groups:
            raise ValueError(f"in_channels={in_channels} must divide by deform_groups={deform_groups}")
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.modulated = modulated
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, kernel_size, kernel_size))
        if bias:
            self.bias = nn.Parameter(torch.zeros(out_channels))
        else:
            self.register_parameter("bias", None)
        fields = 3 if modulated else 2  # (dy, dx[, mask]) per kernel point and deform group
        self.conv_offset = nn.Conv2d(
            in_channels,
            fields * deform_groups * kernel_size * kernel_size,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            bias=True,
        )
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # nn.Conv2d's default
        # Zero offsets (and mask logits): the layer starts as its plain conv, as mmcv's init_offset does.
        nn.init.zeros_(self.conv_offset.weight)
        nn.init.zeros_(self.conv_offset.bias)

    def offsets_and_mask(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """The sampling offsets Tensor[N, 2*G*k*k, h, w] in input pixels, (dy, dx) interleaved per kernel
        point (row-major), and for DCN v2 the mask Tensor[N, G*k*k, h, w] in (0, 1) (None for v1)."""
        out = self.conv_offset(x)
        if not self.modulated:
            return out, None
        # mmcv's ModulatedDeformConv2dPack: o1, o2, mask = chunk(3); offset = cat(o1, o2), i.e. the first
        # 2*G*k*k channels as they are, already (dy, dx) interleaved per point, the layout deform_conv2d reads.
        o1, o2, mask = torch.chunk(out, 3, dim=1)
        return torch.cat((o1, o2), dim=1), mask.sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        offset, mask = self.offsets_and_mask(x)
        # Sample in float32 (float64 stays), as torchvision's autocast rule for deform_conv2d does, and in
        # eager bf16 too, which it has no CPU kernel for; the output goes back to the input's dtype.
        dtype = torch.promote_types(x.dtype, torch.float32)
        with torch.autocast(x.device.type, enabled=False):
            out = deform_conv2d(
                x.to(dtype),
                offset.to(dtype),
                self.weight.to(dtype),
                None if self.bias is None else self.bias.to(dtype),
                stride=self.stride,
                padding=self.padding,
                dilation=self.dilation,
                mask=None if mask is None else mask.to(dtype),
            )
        return out.to(x.dtype)

    def extra_repr(self) -> str:
        out_channels, per_group, k, _ = self.weight.shape
        in_channels = self.conv_offset.in_channels
        return (
            f"{in_channels}, {out_channels}, kernel_size={k}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, groups={in_channels // per_group}, modulated={self.modulated}"
        )


def make_deformable(conv: nn.Conv2d, modulated: bool) -> DeformConv2d:
    """A deformable conv of the same shape, stride, padding, dilation and groups as ``conv``, holding its weight
    (and bias); offsets zero, so it computes what ``conv`` did (v1) or half of it (v2, mask 0.5)."""
    stride, padding, dilation = (conv.stride[0], conv.padding[0], conv.dilation[0])
    if len({*conv.kernel_size}) > 1 or conv.stride[0] != conv.stride[1] or conv.padding[0] != conv.padding[1]:
        raise ValueError(f"make_deformable takes square kernels, strides and paddings, got {conv}")
    deformable = DeformConv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size[0],
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=conv.groups,
        bias=conv.bias is not None,
        modulated=modulated,
    )
    with torch.no_grad():
        deformable.weight.copy_(conv.weight)
        if conv.bias is not None:
            deformable.bias.copy_(conv.bias)
    return deformable.to(conv.weight.device)
