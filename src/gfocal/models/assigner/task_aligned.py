"""TOOD's task-aligned assignment: locations ranked by how well their current prediction fits a ground
truth, in both classification and localisation. Vectorised over images and ground truths.

Shape letters:
    N  images      A  locations over all levels      C  classes
    M  ground-truth boxes per image (padded)      K  candidates per ground truth (top-k)

Reference: Feng et al., "TOOD: Task-aligned One-stage Object Detection", ICCV 2021, Sec. 3.2;
mmdetection 3.3 ``TaskAlignedAssigner.assign`` and ``TOODHead._get_targets_single`` (normalisation).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from gfocal.models.assigner.contract import (
    AssignerInputs,
    Assignment,
    PaddedTargets,
    Predictions,
    claim_candidates,
    empty_assignment,
    points_inside,
)
from gfocal.models.grid import LocationGrid
from gfocal.ops import batched_box_iou

__all__ = ["TaskAlignedAssigner", "task_aligned_assign"]

#: mmdetection's guard in the normalisation t / (max t + eps).
_NORM_EPS = 1e-7


@dataclass(frozen=True)
class TaskAlignedAssigner:
    """:func:`task_aligned_assign` with its settings, as an :class:`~gfocal.models.assigner.Assigner`.

    It ranks locations by the network's own predictions, so from the first step on it trains on what a
    randomly initialised head happens to predict; mmdetection's TOOD runs ATSS for its first epoch
    instead (``initial_epoch``), ultralytics uses this from step 0, as gfocal does.
    """

    topk: int = 13
    alpha: float = 1.0
    beta: float = 6.0
    needs_predictions = True
    gives_soft_targets = True

    def __call__(self, inputs: AssignerInputs) -> Assignment:
        if inputs.predictions is None:
            raise ValueError("the task-aligned assigner ranks locations by the predictions: pass them")
        return task_aligned_assign(
            inputs.grid, inputs.gt, inputs.predictions, self.topk, self.alpha, self.beta, inputs.valid
        )


def task_aligned_assign(
    grid: LocationGrid,
    gt: PaddedTargets,
    predictions: Predictions,
    topk: int = 13,
    alpha: float = 1.0,
    beta: float = 6.0,
    valid: Tensor | None = None,
) -> Assignment:
    """Task-aligned assignment.

    The alignment of a location with a ground truth is ``t = s**alpha * u**beta``: ``s`` the predicted
    score of the ground truth's class there, ``u`` the IoU of the predicted box with it. Per ground truth,
    the ``topk`` locations of highest ``t`` over all levels are candidates; those with ``t > 0`` whose
    point lies inside the box are positives (top-k first, then inside, as mmdetection). A location claimed
    by several ground truths goes to the one its predicted box overlaps most (the first on ties).

    The soft target of a positive is ``t / max t * max u``, maxima over the positives of the same ground
    truth: the best-aligned location of each box is trained towards that box's best IoU.

    Args:
        grid: location points (A of them).
        gt: padded boxes (xyxy input pixels), labels in [0, C) and valid slots, M per image.
        predictions: detached scores (Tensor[N, A, C] in [0, 1]) and boxes (Tensor[N, A, 4] pixels).
        topk: candidates per ground truth.
        alpha, beta: exponents of the score and of the IoU in ``t``.
        valid (Tensor[N, A] bool | None): which locations belong to each image; the others are never
            candidates (mmdetection removes them first). None: all.

    Returns:
        Assignment with [N, A] tensors, ``metric`` (t) and ``soft_target`` included.
    """
    num_images, num_gt = gt.valid.shape
    num_locations = grid.points.shape[0]
    if num_gt == 0:
        return _with_zero_metrics(empty_assignment(num_images, num_locations, grid.points.device))
    # Ranking is bookkeeping, never a path for gradients, and float32 whatever the network ran in.
    scores, boxes = predictions.scores.detach().float(), predictions.boxes.detach().float()
    ious = batched_box_iou(boxes, gt.boxes.float())  # [N, A, M]
    class_scores = scores.gather(2, gt.labels.unsqueeze(1).expand(-1, num_locations, -1))  # [N, A, M]
    alignment = class_scores.pow(alpha) * ious.pow(beta)  # [N, A, M]

    ranked = alignment if valid is None else alignment.masked_fill(~valid.unsqueeze(-1), -1.0)  # never > 0
    ranked_top, candidate_index = ranked.topk(min(topk, num_locations), dim=1)  # [N, K, M]
    inside = points_inside(grid.points[candidate_index], gt.boxes.unsqueeze(1))  # [N, K, M]
    keep = (ranked_top > 0) & inside & gt.valid.unsqueeze(1)  # [N, K, M]

    best_iou, best_gt, positive = claim_candidates(ious, candidate_index, keep)  # [N, A] each
    gt_index = torch.where(positive, best_gt, -1)
    metric = torch.where(positive, alignment.gather(2, best_gt.unsqueeze(-1)).squeeze(-1), 0.0)  # [N, A]
    iou = torch.where(positive, best_iou, 0.0)  # [N, A]
    soft_target = metric / (_per_gt_max(metric, best_gt, num_gt) + _NORM_EPS) * _per_gt_max(iou, best_gt, num_gt)
    return Assignment(gt_index, positive, metric, soft_target)


def _per_gt_max(values: Tensor, gt_index: Tensor, num_gt: int) -> Tensor:
    """At each location, the maximum of ``values`` (Tensor[N, A], >= 0, 0 at negatives) over the locations
    assigned to the same ground truth as it (``gt_index`` Tensor[N, A] in [0, M)): Tensor[N, A]."""
    per_gt = values.new_zeros(values.shape[0], num_gt).scatter_reduce(1, gt_index, values, "amax")  # [N, M]
    return per_gt.gather(1, gt_index)


def _with_zero_metrics(assignment: Assignment) -> Assignment:
    zeros = torch.zeros(assignment.gt_index.shape, device=assignment.gt_index.device)
    return assignment._replace(metric=zeros, soft_target=zeros)
