"""Tile windows of a large image, and which box edges a tile border cut.

Shape letters:
    T  tiles of one image      K  boxes

Windows are xyxy integer pixel ranges ``[x0, y0, x1, y1)`` of the image. Every tile has
the same size (the last row and column are shifted back inside the image rather than
cut short), so tiles batch without padding and the network sees every part of the image
at one scale. Consecutive tiles overlap by at least ``overlap`` of the tile size.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["tile_starts", "tile_windows", "cut_edges"]


def tile_starts(length: int, tile: int, overlap: float) -> list[int]:
    """Start offsets of tiles of ``tile`` pixels covering ``[0, length)`` with at least ``overlap`` shared.

    Args:
        length: image width or height in pixels, >= 1.
        tile: tile side in pixels, >= 1.
        overlap: fraction of ``tile`` shared by neighbours, in [0, 1).

    Returns:
        Offsets, evenly spread, the first 0 and the last ``length - tile`` (a single ``[0]``
        when the image is no longer than a tile).
    """
    if tile < 1 or length < 1:
        raise ValueError(f"tile ({tile}) and image length ({length}) must be >= 1 pixel")
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be a fraction in [0, 1), got {overlap}")
    if length <= tile:
        return [0]
    step = max(1, math.floor(tile * (1 - overlap)))
    count = math.ceil((length - tile) / step) + 1
    # Spread the tiles evenly instead of leaving one sliver tile at the end: the overlap only grows.
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def tile_windows(height: int, width: int, tile: int, overlap: float) -> Tensor:
    """The tile windows of a ``height x width`` image.

    Returns:
        Tensor[T, 4] int64 xyxy windows, row by row; a window is ``min(tile, side)`` pixels along each side.
    """
    ys, xs = tile_starts(height, tile, overlap), tile_starts(width, tile, overlap)
    tile_h, tile_w = min(tile, height), min(tile, width)
    return torch.tensor([[x, y, x + tile_w, y + tile_h] for y in ys for x in xs], dtype=torch.int64)


def cut_edges(
    boxes: Tensor, windows: Tensor, image_size: tuple[int, int], margin: float, edge_std: Tensor | None = None
) -> Tensor:
    """Which box edges lie on an inner border of the tile that saw them (the object may go on beyond).

    A detector clips its boxes to its input, so the edge of an object cut by a tile border
    is predicted at (or near) that border. A border on the image's own edge cuts nothing
    that another tile would see, so it is not an inner border.

    Args:
        boxes (Tensor[K, 4]): xyxy boxes in image pixels.
        windows (Tensor[K, 4]): the window of the tile each box came from, xyxy image pixels.
        image_size: (height, width) of the image.
        margin: an edge this close to an inner border, in pixels, counts as on it.
        edge_std (Tensor[K, 4] | None): standard deviation of each edge in pixels; an edge whose
            distribution reaches the border within one standard deviation counts as on it too.

    Returns:
        Tensor[K, 4] bool, edges left, top, right, bottom.
    """
    height, width = image_size
    windows = windows.to(boxes.dtype)
    reach = torch.full_like(boxes, margin) if edge_std is None else margin + edge_std  # [K, 4]
    near = (boxes - windows).abs() <= reach  # [K, 4]
    inner = torch.stack(
        (windows[:, 0] > 0, windows[:, 1] > 0, windows[:, 2] < width, windows[:, 3] < height), dim=-1
    )  # [K, 4]
    return near & inner
