"""Deformable convolution written from the published formula, to check gfocal's layer (and stand in for mmcv's op).

y[n, o, i, j] = sum over input channels c of o's group and kernel points k of
    weight[o, c, k] * mask[n, g(c), k, i, j] * x_n,c(p_ij + dilation * p_k + offset[n, g(c), k, i, j])
where p_ij = (i * stride - padding, j * stride - padding), p_k runs over the kernel grid row-major, g(c) is
c's deform group, offset holds (dy, dx) per kernel point, and x(p) is bilinear interpolation with zeros
outside the image: x(p) = sum over pixels q of max(0, 1 - |q_y - p_y|) * max(0, 1 - |q_x - p_x|) * x[q].

Reference: Dai et al. 2017, eq. (2) and (3); Zhu et al. 2019, eq. (1).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["deform_conv_reference"]


def _bilinear(image: Tensor, y: Tensor, x: Tensor) -> Tensor:
    """image [N, G, D, H, W] sampled at (y, x) [N, G, K, h, w] (pixels) -> [N, G, D, K, h, w]; zeros outside."""
    n, g, d, height, width = image.shape
    flat = image.flatten(3)  # [N, G, D, H*W]
    out = 0
    for qy in (y.floor(), y.floor() + 1):
        for qx in (x.floor(), x.floor() + 1):
            tent = (1 - (y - qy).abs()) * (1 - (x - qx).abs())
            inside = (qy >= 0) & (qy < height) & (qx >= 0) & (qx < width)
            index = (qy.clamp(0, height - 1) * width + qx.clamp(0, width - 1)).long()  # [N, G, K, h, w]
            values = flat.gather(3, index.flatten(2)[:, :, None].expand(-1, -1, d, -1))  # [N, G, D, K*h*w]
            out = out + values.view(n, g, d, *y.shape[2:]) * (tent * inside)[:, :, None]
    return out


def deform_conv_reference(
    x: Tensor,
    offset: Tensor,
    weight: Tensor,
    stride: int = 1,
    padding: int = 1,
    dilation: int = 1,
    mask: Tensor | None = None,
) -> Tensor:
    """x [N, C, H, W], offset [N, 2*G*K, h, w], weight [O, C/groups, kh, kw], mask [N, G*K, h, w] -> [N, O, h, w]."""
    n, channels, _, _ = x.shape
    out_channels, per_group, kh, kw = weight.shape
    groups, points = channels // per_group, kh * kw
    h, w = offset.shape[-2:]
    deform_groups = offset.shape[1] // (2 * points)
    offset = offset.view(n, deform_groups, points, 2, h, w)
    ky, kx = torch.meshgrid(torch.arange(kh), torch.arange(kw), indexing="ij")
    rows = (torch.arange(h) * stride - padding).view(h, 1) + 0 * torch.arange(w)
    cols = (torch.arange(w) * stride - padding).view(1, w) + 0 * torch.arange(h).view(h, 1)
    y = rows + dilation * ky.reshape(points, 1, 1) + offset[:, :, :, 0]  # [N, G, K, h, w]
    x_ = cols + dilation * kx.reshape(points, 1, 1) + offset[:, :, :, 1]
    sampled = _bilinear(x.view(n, deform_groups, channels // deform_groups, *x.shape[-2:]), y, x_)
    if mask is not None:
        sampled = sampled * mask.view(n, deform_groups, 1, points, h, w)
    columns = sampled.reshape(n, groups, per_group, points, h, w)
    kernel = weight.reshape(groups, out_channels // groups, per_group, points)
    return torch.einsum("ngckhw,gock->ngohw", columns, kernel).reshape(n, out_channels, h, w)
