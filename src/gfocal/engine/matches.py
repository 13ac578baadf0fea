"""The matches of an evaluation, as pycocotools made them: what every curve of a run or a report is read from.

Nothing is matched a second time. A detection is a true positive at IoU threshold t exactly when
pycocotools matched it (``evalImgs[...]["dtMatches"][t] > 0``), and detections are ranked as its
``accumulate`` ranks them (all images of a class, best score first, ties in image order), so curves drawn
from :func:`ranked_detections` are those the AP of ``gfocal eval`` and of a training run's evaluation is the
area of. Read by ``gfocal eval --report`` (:mod:`gfocal.analysis.eval_report`) and by the TensorBoard tracker's
precision-recall curves (:mod:`gfocal.engine.loggers.tensorboard`).

Shape letters: T IoU thresholds (COCO's ten, 0.50:0.95), D detections of one class over all images (best
score first), G score thresholds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "RankedDetections",
    "ThresholdCounts",
    "image_evaluations",
    "iou_threshold_index",
    "pooled",
    "ranked_detections",
    "threshold_counts",
    "threshold_counts_by_class",
]


@dataclass(frozen=True)
class RankedDetections:
    """One class's detections over all images, ranked as pycocotools' ``accumulate`` ranks them.

    scores (float [D]): best first. matched (bool [T, D]): a ground truth was matched at IoU threshold t.
    ignored (bool [T, D]): matched to a crowd or difficult box, so counted neither way. num_gt: ground
    truths that count (not crowd or difficult).
    """

    scores: np.ndarray
    matched: np.ndarray
    ignored: np.ndarray
    num_gt: int

    def counted(self, iou_index: int) -> tuple[np.ndarray, np.ndarray, int]:
        """(scores [D'], true [D'], ground truths) of the detections that count at ``iou_index`` (ignored ones out)."""
        kept = ~self.ignored[iou_index]
        return self.scores[kept], self.matched[iou_index][kept], self.num_gt


def image_evaluations(coco_eval: Any, label: int) -> list[dict[str, Any]]:
    """pycocotools' per-image evaluations of class ``label`` (area "all", the largest maxDets), None left out."""
    images, areas = len(coco_eval.params.imgIds), len(coco_eval.params.areaRng)
    start = coco_eval.params.catIds.index(label) * areas * images  # evalImgs is [K, A, I] flattened; area 0 = all
    return [e for e in coco_eval.evalImgs[start : start + images] if e is not None]


def ranked_detections(coco_eval: Any, label: int) -> RankedDetections:
    """Class ``label``'s detections of an evaluated and accumulated ``COCOeval``, as its ``accumulate`` ranks them."""
    evaluations = image_evaluations(coco_eval, label)
    num_thresholds = len(coco_eval.params.iouThrs)
    if not evaluations:
        empty = np.zeros((num_thresholds, 0), dtype=bool)
        return RankedDetections(np.zeros(0), empty, empty, 0)
    scores = np.concatenate([e["dtScores"] for e in evaluations])  # [D], image after image
    order = np.argsort(-scores, kind="mergesort")  # pycocotools' ranking, ties kept in image order
    matched = np.concatenate([e["dtMatches"] for e in evaluations], axis=1)[:, order] > 0  # [T, D]
    ignored = np.concatenate([e["dtIgnore"] for e in evaluations], axis=1)[:, order].astype(bool)  # [T, D]
    num_gt = int(sum(np.count_nonzero(np.asarray(e["gtIgnore"]) == 0) for e in evaluations))
    return RankedDetections(scores[order], matched, ignored, num_gt)


def iou_threshold_index(params: Any, iou: float) -> int:
    """The index of ``iou`` among ``COCOeval.params.iouThrs`` (the nearest one)."""
    return int(np.argmin(np.abs(np.asarray(params.iouThrs) - iou)))


def pooled(ranked: Iterable[RankedDetections], iou_index: int) -> tuple[np.ndarray, np.ndarray, int]:
    """:meth:`RankedDetections.counted` of every class together, best score first: the detector's as one
    class-blind list."""
    parts = [r.counted(iou_index) for r in ranked]
    scores = np.concatenate([np.zeros(0), *(s for s, _, _ in parts)])
    order = np.argsort(-scores, kind="mergesort")
    true = np.concatenate([np.zeros(0, dtype=bool), *(t for _, t, _ in parts)])
    return scores[order], true[order], sum(n for _, _, n in parts)


@dataclass(frozen=True)
class ThresholdCounts:
    """What a detector keeping the detections scoring above each threshold (the model's rule) gets right and wrong.

    thresholds (float [G]); true_positives, false_positives, false_negatives (int [G]): kept and matched, kept
    and not matched, ground truths no kept detection matched; precision (float [G], 1 where nothing is kept);
    recall (float [G], 0 without ground truth).
    """

    thresholds: np.ndarray
    true_positives: np.ndarray
    false_positives: np.ndarray
    false_negatives: np.ndarray
    precision: np.ndarray
    recall: np.ndarray


def threshold_counts(scores: np.ndarray, true: np.ndarray, num_gt: int, thresholds: np.ndarray) -> ThresholdCounts:
    """:class:`ThresholdCounts` of counted detections.

    Args:
        scores (float [D]): counted detections (ignored ones left out), best first.
        true (bool [D]): each is a true positive.
        num_gt: ground truths that count.
        thresholds (float [G]): score thresholds.
    """
    kept = len(scores) - np.searchsorted(scores[::-1], thresholds, side="right")  # [G] detections > threshold
    true_kept = np.concatenate(([0], np.cumsum(true)))[kept]  # [G]
    return ThresholdCounts(
        thresholds=thresholds,
        true_positives=true_kept,
        false_positives=kept - true_kept,
        false_negatives=num_gt - true_kept,
        precision=np.where(kept > 0, true_kept / np.maximum(kept, 1), 1.0),
        recall=true_kept / num_gt if num_gt else np.zeros(len(thresholds)),
    )


def threshold_counts_by_class(
    coco_eval: Any, class_names: Sequence[str], iou: float, thresholds: np.ndarray
) -> tuple[ThresholdCounts, dict[str, ThresholdCounts]]:
    """:func:`threshold_counts` at IoU threshold ``iou`` of all classes pooled, and of each class with ground truth
    by name, from an evaluated ``COCOeval`` whose category ids are the labels of ``class_names``."""
    at = iou_threshold_index(coco_eval.params, iou)
    ranked = {name: ranked_detections(coco_eval, label) for label, name in zip(coco_eval.params.catIds, class_names)}
    per_class = {name: threshold_counts(*r.counted(at), thresholds) for name, r in ranked.items() if r.num_gt}
    return threshold_counts(*pooled(ranked.values(), at), thresholds), per_class
