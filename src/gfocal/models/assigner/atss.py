"""ATSS assignment of locations to ground truths, vectorised over images, ground truths and levels.

Shape letters:
    N  images      A  locations over all levels      L  levels
    M  ground-truth boxes per image (padded to the batch maximum)
    K  candidates per ground truth (top-k per level, summed over levels)

Reference: PAPER.md "Training recipe", Assignment: ATSS (Zhang et al., CVPR 2020).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor
from torchvision.ops import box_iou

from gfocal.models.assigner.contract import (
    AssignerInputs,
    Assignment,
    claim_candidates,
    empty_assignment,
    points_inside,
)
from gfocal.models.grid import LocationGrid
from gfocal.ops import square_anchors

__all__ = ["ATSSAssigner", "ATSSCandidates", "atss_assign", "atss_candidates"]


@dataclass(frozen=True)
class ATSSAssigner:
    """:func:`atss_assign` with its settings, as an :class:`~gfocal.models.assigner.Assigner`."""

    topk: int = 9
    anchor_scale: float = 8.0
    needs_predictions = False
    gives_soft_targets = False

    def __call__(self, inputs: AssignerInputs) -> Assignment:
        return atss_assign(inputs.grid, inputs.gt.boxes, inputs.gt.valid, self.topk, self.anchor_scale, inputs.valid)


def atss_assign(
    grid: LocationGrid,
    gt_boxes: Tensor,
    gt_valid: Tensor,
    topk: int = 9,
    anchor_scale: float = 8.0,
    valid: Tensor | None = None,
) -> Assignment:
    """Adaptive Training Sample Selection.

    Each location carries one square anchor of side ``anchor_scale * stride``
    (used only to choose samples). Per ground truth: take the ``topk`` locations
    per level closest to its centre; the IoU threshold is the mean + standard
    deviation of their anchors' IoUs; keep candidates at or above it whose point
    lies inside the box. A location claimed by several ground truths goes to
    the one with the highest IoU (the first on ties).

    Invalid locations (``valid`` False: padding, see :func:`valid_locations`) are
    left out before all of this, as mmdetection removes invalid anchors: they are
    never candidates, and a level with fewer than ``topk`` valid locations
    contributes only those.

    Args:
        grid: location points, strides and level sizes (A locations).
        gt_boxes (Tensor[N, M, 4]): xyxy boxes in input pixels, padded.
        gt_valid (Tensor[N, M] bool): which of the M slots are real boxes.
        topk: candidates per level per ground truth.
        anchor_scale: anchor side in strides.
        valid (Tensor[N, A] bool | None): which locations belong to each image; None: all.

    Returns:
        Assignment with [N, A] tensors.
    """
    num_images, num_gt = gt_valid.shape
    num_locations = grid.points.shape[0]
    if num_gt == 0:
        return empty_assignment(num_images, num_locations, grid.points.device)
    ious, candidate_index, is_candidate, threshold = atss_candidates(grid, gt_boxes, topk, anchor_scale, valid)
    candidate_iou = ious.gather(1, candidate_index)  # [N, K, M]

    inside = points_inside(grid.points[candidate_index], gt_boxes.unsqueeze(1))  # [N, K, M]
    keep = (candidate_iou >= threshold.unsqueeze(1)) & inside & gt_valid.unsqueeze(1)  # [N, K, M]
    if is_candidate is not None:
        keep &= is_candidate

    _, best_gt, positive = claim_candidates(ious, candidate_index, keep)  # [N, A] each
    return Assignment(torch.where(positive, best_gt, -1), positive)


class ATSSCandidates(NamedTuple):
    """What ATSS computes per ground truth before it picks positives.

    ious (Tensor[N, A, M]): IoU of each location's square anchor with each ground truth.
    candidate_index (Tensor[N, K, M]): each ground truth's ``topk`` nearest locations per level (indices into A).
    is_candidate (Tensor[N, K, M] bool | None): which of those are valid locations; None: all.
    threshold (Tensor[N, M]): the IoU threshold, mean + std of the candidates' IoUs.
    """

    ious: Tensor
    candidate_index: Tensor
    is_candidate: Tensor | None
    threshold: Tensor


def atss_candidates(
    grid: LocationGrid, gt_boxes: Tensor, topk: int = 9, anchor_scale: float = 8.0, valid: Tensor | None = None
) -> ATSSCandidates:
    """The anchors' IoUs, the candidates and the adaptive IoU threshold of each ground truth (arguments as
    :func:`atss_assign`; ``gt_boxes`` has M >= 1); localization distillation reads the threshold too."""
    num_images, num_gt = gt_boxes.shape[:2]
    num_locations = grid.points.shape[0]
    anchors = square_anchors(grid.points, grid.strides, anchor_scale)  # [A, 4]
    ious = (
        box_iou(anchors, gt_boxes.reshape(-1, 4)).reshape(num_locations, num_images, num_gt).permute(1, 0, 2)
    )  # [N, A, M]

    gt_centers = (gt_boxes[..., :2] + gt_boxes[..., 2:]) / 2  # [N, M, 2]
    # Exact distances (not the matmul form) so near-ties order the same as a direct computation.
    distances = torch.cdist(
        grid.points.unsqueeze(0).expand(num_images, -1, -1), gt_centers, compute_mode="donot_use_mm_for_euclid_dist"
    )  # [N, A, M]
    if valid is not None:
        distances = distances.masked_fill(~valid.unsqueeze(-1), float("inf"))  # invalid ones sort last
    candidate_index = _nearest_per_level(distances, grid.level_sizes, topk)  # [N, K, M]
    is_candidate = None
    if valid is not None:
        # Where a level has fewer than topk valid locations, its picks run on into invalid ones: drop those.
        is_candidate = valid.gather(1, candidate_index.flatten(1)).view_as(candidate_index)  # [N, K, M]
    threshold = _iou_threshold(ious.gather(1, candidate_index), is_candidate)  # [N, M]
    return ATSSCandidates(ious, candidate_index, is_candidate, threshold)


def _nearest_per_level(distances: Tensor, level_sizes: list[int], topk: int) -> Tensor:
    """Indices (into A) of the ``topk`` smallest distances on each level: [N, A, M] -> [N, K, M]."""
    candidates = []
    start = 0
    for size in level_sizes:
        k = min(topk, size)
        level_nearest = distances[:, start : start + size].topk(k, dim=1, largest=False).indices  # [N, k, M]
        candidates.append(level_nearest + start)
        start += size
    return torch.cat(candidates, dim=1)


def _iou_threshold(candidate_iou: Tensor, is_candidate: Tensor | None) -> Tensor:
    """Mean + unbiased standard deviation of the candidates' IoUs: [N, K, M] -> [N, M].

    A single candidate has no spread: its standard deviation counts as 0.
    """
    # Unbiased std (as the reference).
    full = candidate_iou.mean(1) + candidate_iou.std(1).nan_to_num(0.0)  # [N, M]
    if is_candidate is None:
        return full
    # Over the true candidates only. Where all K are, keep the plain statistics (bit for bit).
    count = is_candidate.sum(1)  # [N, M]
    mean = (candidate_iou * is_candidate).sum(1) / count  # [N, M]
    spread = ((candidate_iou - mean.unsqueeze(1)).square() * is_candidate).sum(1) / (count - 1)  # [N, M]
    masked = mean + spread.sqrt().nan_to_num(0.0)
    return torch.where(count == candidate_iou.shape[1], full, masked)
