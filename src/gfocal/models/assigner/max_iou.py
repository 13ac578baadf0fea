"""RetinaNet's max-IoU assignment of anchors: positive above one IoU, negative below another, ignored in
between, and every ground truth keeps its best anchors. Vectorised over images and ground truths.

Each location carries one square anchor of ``anchor_scale`` strides (as ATSS and the anchor-delta box
coding); RetinaNet's nine anchors per location would need a head with nine outputs per location.

Shape letters:
    N  images      A  locations (one anchor each) over all levels      M  ground truths per image (padded)

Reference: Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017, Sec. 4; mmdetection 3.3
``MaxIoUAssigner`` (``assign_wrt_overlaps``, ``gt_max_assign_all=True``, ``match_low_quality=True``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from gfocal.models.assigner.contract import AssignerInputs, Assignment, empty_assignment
from gfocal.models.grid import LocationGrid
from gfocal.ops import batched_box_iou, square_anchors

__all__ = ["MaxIoUAssigner", "max_iou_assign"]


@dataclass(frozen=True)
class MaxIoUAssigner:
    """:func:`max_iou_assign` with its settings, as an :class:`~gfocal.models.assigner.Assigner`."""

    pos_iou: float = 0.5
    neg_iou: float = 0.4
    min_pos_iou: float = 0.0
    anchor_scale: float = 8.0

    def __post_init__(self) -> None:
        if not 0 <= self.neg_iou <= self.pos_iou <= 1:
            raise ValueError(
                f"max-IoU thresholds need 0 <= max_iou_neg <= max_iou_pos <= 1, got {self.neg_iou}, {self.pos_iou}"
            )

    def __call__(self, inputs: AssignerInputs) -> Assignment:
        return max_iou_assign(
            inputs.grid,
            inputs.gt.boxes,
            inputs.gt.valid,
            self.pos_iou,
            self.neg_iou,
            self.min_pos_iou,
            self.anchor_scale,
            inputs.valid,
        )


def max_iou_assign(
    grid: LocationGrid,
    gt_boxes: Tensor,
    gt_valid: Tensor,
    pos_iou: float = 0.5,
    neg_iou: float = 0.4,
    min_pos_iou: float = 0.0,
    anchor_scale: float = 8.0,
    valid: Tensor | None = None,
) -> Assignment:
    """Max-IoU assignment.

    An anchor whose best IoU with any ground truth is at least ``pos_iou`` trains on that ground truth
    (the first on ties); below ``neg_iou`` it is negative; in between, ignored (no classification loss).
    Then each ground truth claims every anchor that shares its best IoU, if that IoU is at least
    ``min_pos_iou``, overriding the above; a later ground truth overrides an earlier one.

    One deliberate difference from mmdetection: a best IoU of 0 claims nothing. There, with
    ``min_pos_iou=0``, a box that overlaps no anchor would claim every anchor (all share IoU 0).

    Args:
        grid: location points and strides; each location's anchor is ``anchor_scale`` strides square.
        gt_boxes (Tensor[N, M, 4]): xyxy in input pixels, padded.
        gt_valid (Tensor[N, M] bool): real slots.
        pos_iou, neg_iou, min_pos_iou: RetinaNet's 0.5, 0.4 and 0 by default.
        valid (Tensor[N, A] bool | None): which locations belong to each image; the others are neither
            positive nor ignored, and count for no ground truth's best IoU. None: all.

    Returns:
        Assignment with [N, A] tensors and ``ignored``.
    """
    num_images, num_gt = gt_valid.shape
    num_locations = grid.points.shape[0]
    if num_gt == 0:
        return empty_assignment(num_images, num_locations, grid.points.device)
    anchors = square_anchors(grid.points, grid.strides, anchor_scale)  # [A, 4]
    ious = batched_box_iou(anchors.expand(num_images, -1, -1), gt_boxes)  # [N, A, M]
    # Padded slots overlap nothing (0: an image without boxes is all negative, as mmdetection's).
    ious = ious.masked_fill(~gt_valid.unsqueeze(1), 0.0)
    if valid is not None:
        ious = ious.masked_fill(~valid.unsqueeze(-1), -1.0)  # below every real IoU: no gt's best

    best_iou, best_gt = ious.max(dim=2)  # [N, A]
    gt_index = torch.where(best_iou >= pos_iou, best_gt, -1)
    negative = (best_iou >= 0) & (best_iou < neg_iou)

    gt_best = ious.amax(dim=1, keepdim=True)  # [N, 1, M]
    claims = (ious == gt_best) & (gt_best >= min_pos_iou) & (gt_best > 0) & gt_valid.unsqueeze(1)  # [N, A, M]
    last_claim = num_gt - 1 - claims.flip(-1).to(torch.uint8).argmax(dim=2)  # [N, A]: the last gt claiming
    gt_index = torch.where(claims.any(dim=2), last_claim, gt_index)

    positive = gt_index >= 0
    ignored = ~positive & ~negative
    if valid is not None:
        ignored &= valid
    return Assignment(gt_index, positive, ignored=ignored)
