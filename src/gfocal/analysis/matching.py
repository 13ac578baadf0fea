"""Class-aware IoU matching of detections to annotated boxes, one image at a time.

:func:`match_detections` pairs each annotation with at most one detection (mutual best matches);
:func:`image_pairs` checks a dataset's detections and holds each image's IoU matrix
(:class:`ImagePairs`), on which :func:`greedy_duplicates` replays COCO evaluation's greedy matching.

Shape letters: K detections, M annotations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor
from torchvision.ops import box_iou

__all__ = ["ImagePairs", "Match", "greedy_duplicates", "image_pairs", "match_detections"]


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


@dataclass(frozen=True)
class ImagePairs:
    """One image's detections and annotations (float64, xyxy original pixels) and their IoU.

    boxes (Tensor[K, 4]), scores (Tensor[K]) in [0, 1], labels (Tensor[K] int64): the detections.
    gt_boxes (Tensor[M, 4]), gt_labels (Tensor[M] int64): the annotations COCO scores (not crowd, not difficult).
    iou (Tensor[K, M]): IoU of each detection with each annotation of its own class; 0 across classes.
    """

    boxes: Tensor
    scores: Tensor
    labels: Tensor
    gt_boxes: Tensor
    gt_labels: Tensor
    iou: Tensor

    def best_iou(self) -> Tensor:
        """Tensor[K]: each detection's IoU with its best same-class annotation, 0 when it has none."""
        return self.iou.amax(dim=1) if self.iou.shape[1] else self.scores.new_zeros(len(self.scores))


def image_pairs(records: Any, detections: Mapping[int, Mapping[str, Any]]) -> list[ImagePairs]:
    """Check ``detections`` against ``records`` and pair each image's detections with its annotations.

    Args:
        records: ``DatasetRecords`` (``images`` with ``annotations``; ``class_names``).
        detections: image index -> {"boxes" [K, 4] xyxy original pixels, "scores" [K] in [0, 1],
            "labels" [K] in 0..C-1} (tensors, arrays or lists); an image left out has no detections.

    Returns:
        one :class:`ImagePairs` per image of ``records``, in order.

    Raises:
        ValueError: an image index out of range, a missing key, unequal lengths, a non-finite or
            inverted box, a score outside [0, 1] or a label outside 0..C-1 (the message names the image).
    """
    num_images, num_classes = len(records.images), len(records.class_names)
    unknown = [index for index in detections if not (isinstance(index, int) and 0 <= index < num_images)]
    if unknown:
        raise ValueError(f"detections for images {unknown[:5]} not in the dataset's {num_images} images")
    pairs = []
    for index, record in enumerate(records.images):
        boxes, scores, labels = _checked(detections.get(index), index, num_classes)
        kept = [a for a in record.annotations if not a.ignore]
        gt_boxes = torch.tensor([a.box for a in kept], dtype=torch.float64).reshape(-1, 4)  # [M, 4]
        gt_labels = torch.tensor([a.label for a in kept], dtype=torch.int64)  # [M]
        iou = box_iou(boxes, gt_boxes) * (labels.unsqueeze(1) == gt_labels.unsqueeze(0))  # [K, M]
        pairs.append(ImagePairs(boxes, scores, labels, gt_boxes, gt_labels, iou))
    return pairs


def _checked(detection: Mapping[str, Any] | None, index: int, num_classes: int) -> tuple[Tensor, Tensor, Tensor]:
    """One image's detections as float64 boxes [K, 4], scores [K] and int64 labels [K], checked."""
    if detection is None:
        return torch.zeros(0, 4, dtype=torch.float64), torch.zeros(0, dtype=torch.float64), torch.zeros(0).long()
    missing = [key for key in ("boxes", "scores", "labels") if key not in detection]
    if missing:
        raise ValueError(f"image {index}: detections lack {missing}")
    boxes = torch.as_tensor(np.asarray(detection["boxes"], dtype=np.float64)).reshape(-1, 4)
    scores = torch.as_tensor(np.asarray(detection["scores"], dtype=np.float64)).reshape(-1)
    labels = torch.as_tensor(np.asarray(detection["labels"])).reshape(-1)
    problem = None
    if not len(boxes) == len(scores) == len(labels):
        problem = f"{len(boxes)} boxes, {len(scores)} scores and {len(labels)} labels"
    elif not (torch.isfinite(boxes).all() and (boxes[:, 2:] >= boxes[:, :2]).all()):
        problem = "boxes must be finite xyxy with x2 >= x1 and y2 >= y1"
    elif not ((scores >= 0) & (scores <= 1)).all():
        problem = "scores must lie in [0, 1]"
    elif len(labels) and (labels.is_floating_point() and (labels != labels.round()).any()):
        problem = "labels must be integers"
    elif len(labels) and not ((labels >= 0) & (labels < num_classes)).all():
        problem = f"labels must lie in 0..{num_classes - 1}"
    if problem:
        raise ValueError(f"image {index}: {problem}")
    return boxes, scores, labels.long()


def greedy_duplicates(pairs: ImagePairs, iou_threshold: float) -> Tensor:
    """Detections that COCO's greedy matching at ``iou_threshold`` marks false positive *because of another*.

    In order of descending score (ties in the given order, as COCO's stable sort), each detection
    claims the unclaimed same-class annotation it overlaps most with IoU >= ``iou_threshold``; a
    detection that finds none unclaimed but overlaps a claimed one that much is a duplicate.

    Returns:
        Tensor[K] bool.
    """
    iou = pairs.iou.numpy()
    duplicate = np.zeros(len(iou), dtype=bool)
    claimed = np.zeros(iou.shape[1], dtype=bool)
    # Sequential by nature, as in pycocotools: each claim changes what the next detection may claim.
    for k in torch.argsort(pairs.scores, descending=True, stable=True).tolist():
        overlapping = iou[k] >= iou_threshold
        free = overlapping & ~claimed
        if free.any():
            claimed[np.where(free, iou[k], -1.0).argmax()] = True
        elif overlapping.any():
            duplicate[k] = True
    return torch.from_numpy(duplicate)
