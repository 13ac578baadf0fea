"""Location points and ATSS assignment, vectorised over images, ground truths and levels.

Shape letters:
    N  images      A  locations over all levels      L  levels
    M  ground-truth boxes per image (padded to the batch maximum)
    K  candidates per ground truth (top-k per level, summed over levels)

Reference: PAPER.md "Training recipe", Assignment: ATSS (Zhang et al., CVPR 2020).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor
from torchvision.ops import box_iou

__all__ = ["LocationGrid", "location_grid", "Assignment", "atss_assign"]


class LocationGrid(NamedTuple):
    """Where every output location sits, flattened over levels (level-major, then row-major).

    points (Tensor[A, 2]): (x, y) in input pixels.
    strides (Tensor[A]): the stride of each location's level.
    level_sizes (list[int]): locations per level, summing to A.
    """

    points: Tensor
    strides: Tensor
    level_sizes: list[int]


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
    return LocationGrid(torch.cat(points), torch.cat(point_strides), sizes)


class Assignment(NamedTuple):
    """Per-location assignment for a batch.

    gt_index (Tensor[N, A] int64): index of the assigned ground truth, -1 for negatives.
    positive (Tensor[N, A] bool): gt_index >= 0.
    """

    gt_index: Tensor
    positive: Tensor


def atss_assign(
    grid: LocationGrid,
    gt_boxes: Tensor,
    gt_valid: Tensor,
    topk: int = 9,
    anchor_scale: float = 8.0,
) -> Assignment:
    """Adaptive Training Sample Selection.

    Each location carries one square anchor of side ``anchor_scale * stride``
    (used only to choose samples). Per ground truth: take the ``topk`` locations
    per level closest to its centre; the IoU threshold is the mean + standard
    deviation of their anchors' IoUs; keep candidates at or above it whose point
    lies inside the box. A location claimed by several ground truths goes to
    the one with the highest IoU (the first on ties).

    Args:
        grid: location points, strides and level sizes (A locations).
        gt_boxes (Tensor[N, M, 4]): xyxy boxes in input pixels, padded.
        gt_valid (Tensor[N, M] bool): which of the M slots are real boxes.
        topk: candidates per level per ground truth.
        anchor_scale: anchor side in strides.

    Returns:
        Assignment with [N, A] tensors.
    """
    num_images, num_gt = gt_valid.shape
    num_locations = grid.points.shape[0]
    if num_gt == 0:
        empty = torch.full((num_images, num_locations), -1, dtype=torch.long, device=grid.points.device)
        return Assignment(empty, empty >= 0)
    half = grid.strides.unsqueeze(-1) * (anchor_scale / 2)
    anchors = torch.cat((grid.points - half, grid.points + half), dim=-1)  # [A, 4]
    ious = box_iou(anchors, gt_boxes.reshape(-1, 4)).reshape(num_locations, num_images, num_gt).permute(1, 0, 2)  # [N, A, M]

    gt_centers = (gt_boxes[..., :2] + gt_boxes[..., 2:]) / 2  # [N, M, 2]
    # Exact distances (not the matmul form) so near-ties order the same as a direct computation.
    distances = torch.cdist(
        grid.points.unsqueeze(0).expand(num_images, -1, -1), gt_centers, compute_mode="donot_use_mm_for_euclid_dist"
    )  # [N, A, M]
    candidates = []
    start = 0
    for size in grid.level_sizes:
        k = min(topk, size)
        level_nearest = distances[:, start : start + size].topk(k, dim=1, largest=False).indices  # [N, k, M]
        candidates.append(level_nearest + start)
        start += size
    candidate_index = torch.cat(candidates, dim=1)  # [N, K, M]
    candidate_iou = ious.gather(1, candidate_index)  # [N, K, M]
    # Unbiased std (as the reference): a single candidate has no spread, use 0.
    threshold = candidate_iou.mean(1) + candidate_iou.std(1).nan_to_num(0.0)  # [N, M]

    candidate_points = grid.points[candidate_index]  # [N, K, M, 2]
    boxes = gt_boxes.unsqueeze(1)  # [N, 1, M, 4]
    inside = torch.stack(
        (
            candidate_points[..., 0] - boxes[..., 0],
            candidate_points[..., 1] - boxes[..., 1],
            boxes[..., 2] - candidate_points[..., 0],
            boxes[..., 3] - candidate_points[..., 1],
        ),
        dim=-1,
    ).amin(-1) > 0.01  # [N, K, M]
    keep = (candidate_iou >= threshold.unsqueeze(1)) & inside & gt_valid.unsqueeze(1)  # [N, K, M]

    claimed = torch.full_like(ious, float("-inf"))
    claimed.scatter_(1, candidate_index, torch.where(keep, candidate_iou, float("-inf")))  # [N, A, M]
    best_iou, best_gt = claimed.max(dim=2)  # [N, A]
    positive = best_iou > float("-inf")
    return Assignment(torch.where(positive, best_gt, -1), positive)
