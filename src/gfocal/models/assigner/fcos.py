"""FCOS's assignment: a location trains on a ground truth whose centre region holds its point and whose
size suits its level; among several, the smallest. Vectorised over images, ground truths and levels.

Shape letters:
    N  images      A  locations over all levels      L  levels
    M  ground-truth boxes per image (padded)

Reference: Tian et al., "FCOS: Fully Convolutional One-Stage Object Detection", ICCV 2019, Sec. 3.1-3.2,
with centre sampling (FCOS "imprv"); mmdetection 3.3 ``FCOSHead._get_targets_single``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from gfocal.models.assigner.contract import AssignerInputs, Assignment, empty_assignment
from gfocal.models.grid import LocationGrid

__all__ = ["FCOSAssigner", "fcos_assign"]


@dataclass(frozen=True)
class FCOSAssigner:
    """:func:`fcos_assign` with its settings, as an :class:`~gfocal.models.assigner.Assigner`."""

    range_edges: tuple[float, ...] = (64.0, 128.0, 256.0, 512.0)
    radius: float = 1.5

    def __post_init__(self) -> None:
        if list(self.range_edges) != sorted(self.range_edges):
            raise ValueError(f"fcos_range_edges must increase level by level, got {self.range_edges}")
        if self.radius <= 0:
            raise ValueError(f"fcos_radius must be > 0 strides, got {self.radius}")

    def __call__(self, inputs: AssignerInputs) -> Assignment:
        return fcos_assign(inputs.grid, inputs.gt.boxes, inputs.gt.valid, self.range_edges, self.radius, inputs.valid)


def fcos_assign(
    grid: LocationGrid,
    gt_boxes: Tensor,
    gt_valid: Tensor,
    range_edges: tuple[float, ...] = (64.0, 128.0, 256.0, 512.0),
    radius: float = 1.5,
    valid: Tensor | None = None,
) -> Assignment:
    """FCOS assignment with centre sampling.

    A location is a candidate of a ground truth when its point lies strictly inside the box's centre
    region (the box's centre +- ``radius`` strides of the location's level, cut to the box) and the
    largest of its four distances to the box's edges lies in its level's range, inclusive. Level ``l``
    has range ``[range_edges[l-1], range_edges[l]]``, the first starting at -1 and the last without
    end: the defaults are FCOS's (-1, 64), (64, 128), (128, 256), (256, 512), (512, inf). A location
    with several candidates trains on the one of smallest area (the first on ties).

    Args:
        grid: location points and strides, L levels.
        gt_boxes (Tensor[N, M, 4]): xyxy in input pixels, padded.
        gt_valid (Tensor[N, M] bool): real slots.
        range_edges: L - 1 increasing edges between the levels' ranges, pixels.
        radius: half-side of the centre region, in strides.
        valid (Tensor[N, A] bool | None): which locations belong to each image; None: all.

    Returns:
        Assignment with [N, A] tensors.
    """
    if len(range_edges) != len(grid.level_sizes) - 1:
        raise ValueError(
            f"fcos_range_edges has {len(range_edges)} edges for {len(grid.level_sizes)} levels; it needs one less "
            "(FCOS's default (64, 128, 256, 512) fits 5 strides)"
        )
    num_images, num_gt = gt_valid.shape
    num_locations = grid.points.shape[0]
    if num_gt == 0:
        return empty_assignment(num_images, num_locations, grid.points.device)
    points = grid.points[None, :, None, :]  # [1, A, 1, 2]
    boxes = gt_boxes.unsqueeze(1)  # [N, 1, M, 4]
    x, y = points[..., 0], points[..., 1]  # [1, A, 1]
    edge_distances = torch.stack(
        (x - boxes[..., 0], y - boxes[..., 1], boxes[..., 2] - x, boxes[..., 3] - y), dim=-1
    )  # [N, A, M, 4]

    half = (grid.strides * radius)[None, :, None]  # [1, A, 1]
    centre_x, centre_y = (boxes[..., 0] + boxes[..., 2]) / 2, (boxes[..., 1] + boxes[..., 3]) / 2  # [N, 1, M]
    region = torch.stack(
        (
            torch.maximum(centre_x - half, boxes[..., 0]),
            torch.maximum(centre_y - half, boxes[..., 1]),
            torch.minimum(centre_x + half, boxes[..., 2]),
            torch.minimum(centre_y + half, boxes[..., 3]),
        ),
        dim=-1,
    )  # [N, A, M, 4]
    in_centre = (
        torch.stack((x - region[..., 0], y - region[..., 1], region[..., 2] - x, region[..., 3] - y), dim=-1).amin(-1)
        > 0
    )  # [N, A, M]

    low, high = _level_ranges(grid, range_edges)  # [A] each
    reach = edge_distances.amax(-1)  # [N, A, M]
    in_range = (reach >= low[None, :, None]) & (reach <= high[None, :, None])

    candidate = in_centre & in_range & gt_valid.unsqueeze(1)  # [N, A, M]
    if valid is not None:
        candidate &= valid.unsqueeze(-1)
    area = ((gt_boxes[..., 2] - gt_boxes[..., 0]) * (gt_boxes[..., 3] - gt_boxes[..., 1])).unsqueeze(1)  # [N, 1, M]
    smallest = torch.where(candidate, area, float("inf")).argmin(dim=2)  # [N, A], the first on ties
    positive = candidate.any(dim=2)
    return Assignment(torch.where(positive, smallest, -1), positive)


def _level_ranges(grid: LocationGrid, range_edges: tuple[float, ...]) -> tuple[Tensor, Tensor]:
    """Each location's level range (low, high), Tensor[A] each, from the L - 1 edges between levels."""
    lows = torch.tensor((-1.0, *range_edges), device=grid.points.device)  # [L]
    highs = torch.tensor((*range_edges, float("inf")), device=grid.points.device)  # [L]
    sizes = torch.tensor(grid.level_sizes, device=grid.points.device)
    return lows.repeat_interleave(sizes), highs.repeat_interleave(sizes)
