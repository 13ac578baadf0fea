"""The numbers of ``gfocal eval --report``, read from pycocotools' own evaluation of the detections AP scored.

Nothing is matched a second time (:mod:`gfocal.engine.matches`). A detection is a true positive at IoU
threshold t exactly when pycocotools matched it (``evalImgs[...]["dtMatches"][t] > 0``); precision and recall
follow the ranking of its ``accumulate`` (all images of a class, best score first, ties in image order), so the 101-point
interpolated AP of :func:`interpolated_precision` on these curves is the AP ``gfocal eval`` prints
(``tests/analysis/test_eval_report.py`` checks it per class at IoU 0.5 and 0.75).

Keeping only the detections scoring above a threshold keeps COCO's matches of those detections unchanged: COCO
matches each image's detections greedily, best score first, so a lower-scoring detection never takes a
ground truth from a higher one. Errors at a threshold (:func:`outcomes_at`) therefore read the same
matches. Only class confusions need an overlap between classes, which COCO never computes: a false
detection of class j overlapping (IoU >= 0.5) a missed ground truth of class i != j counts as i taken
for j (:func:`confusion_matrix`).

Shape letters: T IoU thresholds (COCO's ten, 0.50:0.95), R recall points (101), K classes,
D detections of one class over all images (best score first), G grid of score thresholds.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gfocal.engine.matches import (
    RankedDetections,
    image_evaluations,
    iou_threshold_index,
    pooled,
    ranked_detections,
    threshold_counts,
)

__all__ = [
    "IOU_FOR_THRESHOLD",
    "RankedDetections",
    "ImageOutcome",
    "ranked_detections",
    "precision_recall",
    "interpolated_precision",
    "f1_by_threshold",
    "best_f1",
    "best_score_thresholds",
    "suggested_score_threshold",
    "outcomes_at",
    "confusion_matrix",
    "eval_report",
    "read_best_threshold",
]

IOU_FOR_THRESHOLD = 0.5  # the suggested score threshold is the best F1 at this IoU (a detection "found" the object)
_GRID = np.linspace(0.0, 1.0, 101)  # score thresholds at which F1 is drawn and stored


@dataclass(frozen=True)
class ImageOutcome:
    """One image's detections and ground truths at a score threshold and IoU (ids of pycocotools' datasets).

    true_positives, false_positives: detection ids (``cocoDt``); missed: ground-truth ids (``cocoGt``).
    """

    image_id: int
    true_positives: list[int]
    false_positives: list[int]
    missed: list[int]

    @property
    def errors(self) -> int:
        return len(self.false_positives) + len(self.missed)


def precision_recall(ranked: RankedDetections, iou_index: int) -> tuple[np.ndarray, np.ndarray]:
    """(precision [D], recall [D]) after each ranked detection at IoU threshold ``iou_index`` (raw, not interpolated).

    Ignored detections repeat the previous point, as in pycocotools. Empty when the class has no ground truth.
    """
    if ranked.num_gt == 0:
        return np.zeros(0), np.zeros(0)
    counted = ~ranked.ignored[iou_index]
    true_positives = np.cumsum(ranked.matched[iou_index] & counted)  # [D]
    false_positives = np.cumsum(~ranked.matched[iou_index] & counted)
    return true_positives / (true_positives + false_positives + np.spacing(1)), true_positives / ranked.num_gt


def interpolated_precision(precision: np.ndarray, recall: np.ndarray, recall_points: np.ndarray) -> np.ndarray:
    """float [R]: COCO's interpolated precision at each recall point (the best precision at that recall or more).

    Its mean is the class's AP at that IoU; 0 at recall points the detections never reach.
    """
    envelope = np.maximum.accumulate(precision[::-1])[::-1]  # [D], non-increasing
    at = np.searchsorted(recall, recall_points, side="left")  # first detection reaching each recall point
    reached = at < len(envelope)
    out = np.zeros(len(recall_points))
    out[reached] = envelope[at[reached]]
    return out


def f1_by_threshold(scores: np.ndarray, true: np.ndarray, num_gt: int, thresholds: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall and F1 of the detections scoring above each threshold (the model's ``score_threshold`` rule).

    Args:
        scores (float [D]): counted detections (ignored ones left out), best first.
        true (bool [D]): each is a true positive.
        num_gt: ground truths that count.
        thresholds (float [G]): score thresholds.

    Returns:
        ``{"threshold", "precision", "recall", "f1"}``, float [G] each; precision 1 where nothing is kept.
    """
    counts = threshold_counts(scores, true, num_gt, thresholds)
    precision, recall, true_kept = counts.precision, counts.recall, counts.true_positives
    f1 = np.where(true_kept > 0, 2 * precision * recall / np.maximum(precision + recall, np.spacing(1)), 0.0)
    return {"threshold": thresholds, "precision": precision, "recall": recall, "f1": f1}


def best_f1(scores: np.ndarray, true: np.ndarray, num_gt: int) -> dict[str, float] | None:
    """The score threshold of the best F1, with its precision, recall and F1 and ``lowest_kept_score``; None with no
    true positive. Arguments as :func:`f1_by_threshold`; ties go to the higher threshold (fewer detections).

    The threshold lies halfway between the lowest score kept and the highest one dropped (half the lowest when
    all are kept), so the model's rule, ``score > threshold``, keeps exactly the detections counted, and a score
    that moves a little between this evaluation and a later prediction stays on its side.
    """
    if not true.any() or num_gt == 0:
        return None
    distinct = np.unique(scores)[::-1]  # [U] best first
    cuts = (distinct + np.append(distinct[1:], 0.0)) / 2  # [U]: keeps the scores >= distinct[u]
    curve = f1_by_threshold(scores, true, num_gt, cuts)
    best = int(np.argmax(curve["f1"]))
    found = {name: float(curve[name][best]) for name in ("threshold", "precision", "recall", "f1")}
    return {**found, "lowest_kept_score": float(distinct[best])}


def best_score_thresholds(ranked: dict[str, RankedDetections], iou_index: int) -> dict[str, Any]:
    """The best-F1 score threshold over all classes (``"overall"``: every class's detections pooled) and per class
    (``"per_class"``: {class: :func:`best_f1`})."""
    return {
        "overall": best_f1(*pooled(ranked.values(), iou_index)),
        "per_class": {name: best_f1(*r.counted(iou_index)) for name, r in ranked.items()},
    }


def suggested_score_threshold(coco_eval: Any, class_names: list[str]) -> dict[str, Any]:
    """What ``gfocal eval`` stores as ``best_score_threshold``: :func:`best_score_thresholds` at IoU 0.5, with
    ``"iou"`` and ``"criterion"`` ("F1")."""
    ranked = {name: ranked_detections(coco_eval, label) for label, name in zip(coco_eval.params.catIds, class_names)}
    return _suggested(ranked, iou_threshold_index(coco_eval.params, IOU_FOR_THRESHOLD))


def _suggested(ranked: dict[str, RankedDetections], iou_index: int) -> dict[str, Any]:
    return {"iou": IOU_FOR_THRESHOLD, "criterion": "F1", **best_score_thresholds(ranked, iou_index)}


def outcomes_at(coco_eval: Any, threshold: float, iou_index: int = 0) -> list[ImageOutcome]:
    """Per image (in ``params.imgIds`` order): its true and false positives scoring above ``threshold`` (the model's
    rule) and its missed ground truths, by COCO's own matches at IoU threshold ``iou_index`` (see the module doc)."""
    outcomes = {int(i): ImageOutcome(int(i), [], [], []) for i in coco_eval.params.imgIds}
    for label in coco_eval.params.catIds:
        for e in image_evaluations(coco_eval, label):
            outcome = outcomes[e["image_id"]]
            scores = np.asarray(e["dtScores"])
            kept = (scores > threshold) & ~np.asarray(e["dtIgnore"][iou_index], dtype=bool)
            matched = np.asarray(e["dtMatches"][iou_index]) > 0
            ids = np.asarray(e["dtIds"])
            outcome.true_positives.extend(ids[kept & matched].tolist())
            outcome.false_positives.extend(ids[kept & ~matched].tolist())
            found = set(ids[kept & matched].tolist())
            for gt_id, det_id, ignore in zip(e["gtIds"], e["gtMatches"][iou_index], e["gtIgnore"]):
                if not ignore and int(det_id) not in found:
                    outcome.missed.append(int(gt_id))
    return list(outcomes.values())


def _xyxy(annotations: list[dict[str, Any]]) -> np.ndarray:
    boxes = np.asarray([a["bbox"] for a in annotations], dtype=np.float64).reshape(-1, 4)  # xywh
    return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """float [P, Q]: IoU of xyxy boxes a [P, 4] and b [Q, 4]."""
    low, high = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(high - low, 0, None), axis=-1)
    area = lambda boxes: np.prod(boxes[:, 2:] - boxes[:, :2], axis=-1)  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, np.spacing(1))


def confusion_matrix(coco_eval: Any, outcomes: list[ImageOutcome], iou: float = 0.5) -> np.ndarray:
    """int [K + 1, K + 1]: rows the true class, columns the detected one; index K is background.

    [i, i]: true positives; [i, j]: a missed ground truth of class i overlapped (IoU >= ``iou``) by a false
    detection of class j (greedy, best score first, each used once); [i, K]: missed with no such detection;
    [K, j]: false detections of class j left over. Row i sums to class i's ground truths that count.
    """
    labels = list(coco_eval.params.catIds)
    size = len(labels)
    matrix = np.zeros((size + 1, size + 1), dtype=np.int64)
    gt_anns, dt_anns = coco_eval.cocoGt.anns, coco_eval.cocoDt.anns
    for outcome in outcomes:
        for det_id in outcome.true_positives:
            k = labels.index(dt_anns[det_id]["category_id"])
            matrix[k, k] += 1
        missed = [gt_anns[i] for i in outcome.missed]
        false = sorted((dt_anns[i] for i in outcome.false_positives), key=lambda d: -d["score"])
        gt_class = np.asarray([labels.index(g["category_id"]) for g in missed], dtype=np.int64)
        dt_class = np.asarray([labels.index(d["category_id"]) for d in false], dtype=np.int64)
        overlap = _iou(_xyxy(false), _xyxy(missed))  # [F, M]
        overlap[dt_class[:, None] == gt_class[None, :]] = 0.0  # same class: already a miss and a false positive
        taken = np.zeros(len(missed), dtype=bool)
        for f, row in enumerate(overlap):  # few boxes per image; greedy in score order as COCO's matching
            row = np.where(taken, 0.0, row)
            m = int(np.argmax(row)) if len(row) else -1
            if m >= 0 and row[m] >= iou:
                taken[m] = True
                matrix[gt_class[m], dt_class[f]] += 1
            else:
                matrix[size, dt_class[f]] += 1
        np.add.at(matrix[:, size], gt_class[~taken], 1)
    return matrix


def _class_ap(precision: np.ndarray) -> float | None:
    """Mean of a [R] interpolated precision, None where pycocotools has -1 (no ground truth)."""
    return float(precision.mean()) if (precision > -1).all() else None


def eval_report(coco_eval: Any, class_names: list[str], results: dict[str, Any], worst: int = 12) -> dict[str, Any]:
    """Everything the report shows, JSON-ready, from an evaluated and accumulated ``COCOeval`` of ``gfocal eval``.

    Returns:
        ``iou_thresholds`` [T]; ``recall_points`` [R]; ``AP_per_iou`` (``results``') and ``per_class``
        rows (AP, AP50, AP75, AP per IoU, the best F1 threshold); ``pr_curves``: {"0.50"/"0.75": {class:
        interpolated precision [R] from :func:`ranked_detections`}}; ``f1_curves``: {class or "all":
        :func:`f1_by_threshold` on a 0..1 grid, at IoU 0.5}; ``best_score_threshold``
        (:func:`suggested_score_threshold`); ``confusion``: {"labels": classes + "background", "matrix"} at the
        overall threshold; ``worst_images``: the ``worst`` images by errors (misses + false positives) at that threshold.
    """
    params = coco_eval.params
    iou_index, strict_index = iou_threshold_index(params, IOU_FOR_THRESHOLD), iou_threshold_index(params, 0.75)
    ranked = {name: ranked_detections(coco_eval, label) for label, name in zip(params.catIds, class_names)}
    thresholds = _suggested(ranked, iou_index)
    precision = coco_eval.eval["precision"][:, :, :, 0, -1]  # [T, R, K], area all, largest maxDets
    curves = {
        f"{params.iouThrs[t]:.2f}": {
            name: interpolated_precision(*precision_recall(r, t), params.recThrs).tolist() if r.num_gt else None
            for name, r in ranked.items()
        }
        for t in (iou_index, strict_index)
    }
    f1_curves = {name: f1_by_threshold(*r.counted(iou_index), _GRID) for name, r in ranked.items()}
    f1_curves["all"] = f1_by_threshold(*pooled(ranked.values(), iou_index), _GRID)
    overall = thresholds["overall"]
    outcomes = outcomes_at(coco_eval, overall["threshold"] if overall else np.inf, iou_index)
    per_class = [
        {
            **row,
            "AP75": _class_ap(precision[strict_index, :, k]),
            "AP_per_iou": {f"{v:.2f}": _class_ap(precision[t, :, k]) for t, v in enumerate(params.iouThrs)},
            "best_f1": thresholds["per_class"][row["class"]],
        }
        for k, row in enumerate(results["per_class"])
    ]
    return {
        "iou_thresholds": params.iouThrs.tolist(),
        "recall_points": params.recThrs.tolist(),
        "AP": results["AP"],
        "AP_per_iou": results["AP_per_iou"],
        "per_class": per_class,
        "pr_curves": curves,
        "f1_curves": {name: {k: v.tolist() for k, v in curve.items()} for name, curve in f1_curves.items()},
        "best_score_threshold": thresholds,
        "confusion": {
            "labels": [*class_names, "background"],
            "matrix": confusion_matrix(coco_eval, outcomes, IOU_FOR_THRESHOLD).tolist(),
        },
        "worst_images": [
            {
                "image_id": o.image_id,
                "errors": o.errors,
                "false_positives": len(o.false_positives),
                "missed": len(o.missed),
            }
            for o in sorted(outcomes, key=lambda o: -o.errors)[:worst]
            if o.errors
        ],
    }


def read_best_threshold(path: str | os.PathLike[str]) -> tuple[float, str | None]:
    """The overall best-F1 score threshold that ``gfocal eval`` stored, and the weights it was found for.

    Args:
        path: the eval JSON (``gfocal eval --out``), a report's ``report.json``, or the ``--report`` folder.

    Returns:
        (threshold, the ``weights`` path as ``gfocal eval`` was given it, or None if not stored).

    Raises:
        FileNotFoundError: no such file. ValueError: the file holds no threshold (written before thresholds were
            stored, or no detection was ever right).
    """
    path = Path(path)
    if path.is_dir():
        path = path / "report.json"
    stored = json.loads(path.read_text())
    best = stored.get("best_score_threshold")
    if best is None:
        raise ValueError(f"{path}: no best_score_threshold in it; run 'gfocal eval' again to store one")
    if best.get("overall") is None:
        raise ValueError(f"{path}: no score threshold could be chosen (no detection matched a ground truth)")
    return float(best["overall"]["threshold"]), stored.get("weights")
