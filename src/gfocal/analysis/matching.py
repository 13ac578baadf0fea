"""Class-aware IoU matching of detections to annotated boxes, one image at a time.

Shape letters: K detections, M annotations.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor
from torchvision.ops import box_iou

__all__ = ["Match", "match_detections"]


class Match(NamedTuple):
    """detection (Tensor[M] int64): index of the matched detection per annotation, -1 when none.
    iou (Tensor[M] float): IoU with it, 0 when none."""

    detection: Tensor
    iou: Tensor


def match_detections(
    boxes: Tensor, labels: Tensor, scores: Tensor, gt_boxes: Tensor, gt_labels: Tensor, iou_threshold: float = 0.5
) -> Match:
    """Match each annotation to at most one detection of its class, and each detection to at most one annotation.

    Every annotation proposes the same-class detection with the highest IoU (at
    least ``iou_threshold``; ties go to the higher score); a detection proposed
    by several annotations keeps the one it overlaps most and the others stay
    unmatched. Mutual best matches, without the sequential greedy pass of COCO
    evaluation (this is for analysis, not for AP).

    Args:
        boxes (Tensor[K, 4]), labels (Tensor[K] int64), scores (Tensor[K]): detections, xyxy pixels.
        gt_boxes (Tensor[M, 4]), gt_labels (Tensor[M] int64): annotations, same pixels.
        iou_threshold: the least IoU of a match, in (0, 1].

    Returns:
        :class:`Match` with [M] tensors.
    """
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
    num_gt = gt_boxes.shape[0]
    none = Match(torch.full((num_gt,), -1, dtype=torch.long, device=gt_boxes.device), gt_boxes.new_zeros(num_gt))
    if boxes.shape[0] == 0 or num_gt == 0:
        return none
    iou = box_iou(gt_boxes.float(), boxes.float())  # [M, K]
    iou = torch.where(gt_labels.unsqueeze(1) == labels.unsqueeze(0), iou, 0.0)
    # Break IoU ties by score without changing the order of distinct IoUs.
    ranked = iou + 1e-6 * scores.float().unsqueeze(0) * (iou > 0)
    best_iou, best = ranked.max(dim=1)  # [M]
    proposed = best_iou >= iou_threshold
    # Each detection keeps its best proposer: [K] highest proposing IoU, then compare.
    claim = torch.full((boxes.shape[0],), -1.0, device=iou.device)
    claim.scatter_reduce_(0, best[proposed], best_iou[proposed], reduce="amax")
    keep = proposed & (best_iou >= claim[best])
    # Exact ties between two annotations for one detection: the first annotation wins.
    first = torch.full((boxes.shape[0],), num_gt, dtype=torch.long, device=iou.device)
    annotation_index = torch.arange(num_gt, device=iou.device)
    first.scatter_reduce_(0, best[keep], annotation_index[keep], reduce="amin")
    keep &= first[best] == annotation_index
    matched_iou = iou.gather(1, best.unsqueeze(1)).squeeze(1)
    return Match(torch.where(keep, best, -1), torch.where(keep, matched_iou, 0.0))
