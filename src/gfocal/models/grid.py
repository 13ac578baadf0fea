"""The output locations of a dense head: their points and strides over the FPN levels, and which
of them belong to each image of a zero-padded batch.

Shape letters: N images, A locations over all levels.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["LocationGrid", "flatten_locations", "location_grid", "valid_locations"]


class LocationGrid(NamedTuple):
    """Where every output location sits, flattened over levels (level-major, then row-major).

    points (Tensor[A, 2]): (x, y) in input pixels.
    strides (Tensor[A]): the stride of each location's level.
    level_sizes (list[int]): locations per level, summing to A.
    level_shapes (list[tuple[int, int]]): (height, width) of each level's feature map.
    level_strides (list[int]): the stride of each level, in input pixels.
    """

    points: Tensor
    strides: Tensor
    level_sizes: list[int]
    level_shapes: list[tuple[int, int]]
    level_strides: list[int]


def flatten_locations(x: Tensor) -> Tensor:
    """One level's per-cell outputs in location order: Tensor[N, K, H, W] -> Tensor[N, H*W, K] (row-major)."""
    return x.flatten(2).transpose(1, 2)


def location_grid(
    feature_shapes: list[tuple[int, int]], strides: tuple[int, ...], offset: float, device: torch.device
) -> LocationGrid:
    """Points at ``(index + offset) * stride`` for every cell of every level, float32."""
    points, point_strides, sizes = [], [], []
    for (height, width), stride in zip(feature_shapes, strides):
        ys = (torch.arange(height, device=device, dtype=torch.float32) + offset) * stride
        xs = (torch.arange(width, device=device, dtype=torch.float32) + offset) * stride
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        points.append(torch.stack((grid_x.reshape(-1), grid_y.reshape(-1)), dim=-1))
        point_strides.append(torch.full((height * width,), float(stride), device=device))
        sizes.append(height * width)
    shapes = [(height, width) for height, width in feature_shapes]
    return LocationGrid(torch.cat(points), torch.cat(point_strides), sizes, shapes, list(strides[: len(shapes)]))


def valid_locations(grid: LocationGrid, image_sizes: list[tuple[int, int]], size_divisible: int = 1) -> Tensor:
    """Which locations of a zero-padded batch belong to each image: mmdetection's "valid flags".

    Each image counts as padded to its own multiple of ``size_divisible`` (mmdetection's
    ``pad_shape``); on a level of stride s, a cell (row, col) is valid when
    ``row < ceil(pad_h / s)`` and ``col < ceil(pad_w / s)``. The valid cells of an image are then
    exactly the grid it would have alone, so a batch assigns and trains as its images one by one.
    The rest lies in padding added only to match other images: it is never a candidate of
    :func:`atss_assign` and has no loss.

    Args:
        grid: the batch's locations (A of them).
        image_sizes: (height, width) of each image inside the padding, in input pixels.
        size_divisible: the multiple each image is padded to on its own (1: valid = ``ceil(h / s)`` cells).

    Returns:
        Tensor[N, A] bool.

    Reference: mmdetection ``AnchorGenerator.valid_flags`` with ``img_meta["pad_shape"]``, and
    ``anchor_inside_flags`` with ``allowed_border=-1`` (GFL's setting), which keeps exactly those.
    """
    device = grid.points.device
    divisor = size_divisible
    padded = [(_ceil_div(h, divisor) * divisor, _ceil_div(w, divisor) * divisor) for h, w in image_sizes]
    levels = []
    for (height, width), stride in zip(grid.level_shapes, grid.level_strides):
        # Counts from Python ints on the host: no device sync.
        valid_rows = torch.tensor([min(_ceil_div(h, stride), height) for h, _ in padded], device=device)  # [N]
        valid_cols = torch.tensor([min(_ceil_div(w, stride), width) for _, w in padded], device=device)  # [N]
        rows = torch.arange(height, device=device) < valid_rows.unsqueeze(-1)  # [N, H_l]
        cols = torch.arange(width, device=device) < valid_cols.unsqueeze(-1)  # [N, W_l]
        levels.append((rows.unsqueeze(-1) & cols.unsqueeze(1)).flatten(1))  # [N, H_l*W_l]
    return torch.cat(levels, dim=1)


def _ceil_div(value: int, divisor: int) -> int:
    return -(-value // divisor)
