"""Where a detector's boxes fall short of the annotations: how close, which way, how well ranked, how often doubled.

Pure functions on one dataset's annotations and any detector's detections (boxes xyxy in original
image pixels, scores, labels 0..C-1), so gfocal and a peer (YOLOv8n) are measured by the same code:

- :func:`~gfocal.analysis.matching.image_pairs`: each image's detections and annotations with
  their same-class IoU (checked on the way in);
- :func:`object_matches`: each annotated object's best same-class detection;
- :func:`iou_statistics`, :func:`box_error_statistics`: how close the best matches are, and their
  signed edge errors (box too large or too small, shifted);
- :func:`score_iou_correlation`: whether the score ranks the better boxes first (Spearman);
- :func:`duplicate_statistics`: detections that COCO's greedy matching counts as false positives
  because a higher-scoring one already claimed their object
  (:func:`~gfocal.analysis.matching.greedy_duplicates`);
- :func:`diagnose_localisation`: all of these and the oracle decomposition
  (:mod:`gfocal.analysis.localisation_oracles`) as one JSON-ready dict.

Crowd and difficult annotations are left out of every statistic here, as COCO evaluation ignores
them. Shape letters: K detections of one image, M its annotations, O annotated objects of the dataset.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor

from gfocal.analysis.calibration import rank_correlation
from gfocal.analysis.distributions import EDGES
from gfocal.analysis.localisation_oracles import oracle_decomposition
from gfocal.analysis.matching import ImagePairs, greedy_duplicates, image_pairs

__all__ = [
    "QUANTILES",
    "ObjectMatches",
    "box_error_statistics",
    "diagnose_localisation",
    "duplicate_statistics",
    "edge_errors",
    "iou_statistics",
    "object_matches",
    "quantiles",
    "score_iou_correlation",
]

QUANTILES = (0.10, 0.25, 0.50, 0.75, 0.90)
#: The IoUs of COCO's AP50 and AP75, at which shares and duplicates are counted.
COUNTED_IOUS = (0.50, 0.75)
HISTOGRAM_BIN = 0.05


class ObjectMatches(NamedTuple):
    """Each annotated object of a dataset with its best same-class detection.

    image (Tensor[O] int64): index of the object's image in ``records.images``.
    annotation (Tensor[O] int64): the object's row in its image's :class:`ImagePairs` ``gt_boxes``.
    gt_boxes (Tensor[O, 4]): the annotated boxes, xyxy pixels.
    detection (Tensor[O] int64): the best detection with score >= the threshold (its row in its
        image's :class:`ImagePairs`), -1 when none overlaps the object.
    iou (Tensor[O]): IoU of that detection, 0 when none; ``boxes`` (Tensor[O, 4]): its box, NaN when none.
    iou_any_score (Tensor[O]): the best IoU among all the image's detections of the class, whatever their score.
    """

    image: Tensor
    annotation: Tensor
    gt_boxes: Tensor
    detection: Tensor
    iou: Tensor
    boxes: Tensor
    iou_any_score: Tensor


def object_matches(pairs: list[ImagePairs], score_threshold: float = 0.3) -> ObjectMatches:
    """Each annotation's best same-class detection (highest IoU) among those scoring >= ``score_threshold``.

    One detection may be the best of several objects: this asks how close the detector came to each
    object, not how COCO pairs them.
    """
    parts: dict[str, list[Tensor]] = {name: [] for name in ObjectMatches._fields}
    for index, image in enumerate(pairs):
        count, none = len(image.gt_boxes), len(image.boxes)  # row ``none``: no detection
        no_row = image.iou.new_zeros(1, count)
        confident = torch.cat([image.iou * (image.scores >= score_threshold).unsqueeze(1), no_row])  # [K+1, M]
        best_iou, best = confident.max(dim=0)  # [M]
        best = torch.where(best_iou > 0, best, none)
        padded_boxes = torch.cat([image.boxes, image.boxes.new_full((1, 4), float("nan"))])  # [K+1, 4]
        parts["image"].append(torch.full((count,), index))
        parts["annotation"].append(torch.arange(count))
        parts["gt_boxes"].append(image.gt_boxes)
        parts["detection"].append(torch.where(best < none, best, -1))
        parts["iou"].append(torch.where(best < none, best_iou, 0.0))
        parts["boxes"].append(padded_boxes[best])
        parts["iou_any_score"].append(torch.cat([image.iou, no_row]).amax(dim=0))
    return ObjectMatches(**{name: torch.cat(values) for name, values in parts.items()})


def quantiles(values: Tensor) -> dict[str, float | None]:
    """``p10``, ``p25``, ``p50``, ``p75``, ``p90`` of a 1-D tensor (:data:`QUANTILES`); None when it is empty."""
    if values.numel() == 0:
        return {f"p{round(q * 100)}": None for q in QUANTILES}
    found = torch.quantile(values.double(), values.new_tensor(QUANTILES, dtype=torch.float64))
    return {f"p{round(q * 100)}": float(v) for q, v in zip(QUANTILES, found)}


def iou_statistics(iou: Tensor) -> dict[str, Any]:
    """How close the best matches come: quantiles, a histogram in 0.05 bins, and the shares at 0.5 and 0.75.

    Args:
        iou (Tensor[O]): each object's best IoU, in [0, 1] (0: nothing overlaps it).

    Returns:
        JSON-ready dict: ``objects``; ``quantiles`` (:func:`quantiles`); ``histogram``: ``edges``
        (21 values, 0 to 1) and ``counts`` (20; IoU 1 falls in the last bin); ``share_iou_050``,
        ``share_iou_075``: the fraction of objects matched at least that well (None without objects).
    """
    bins = round(1 / HISTOGRAM_BIN)
    counts = torch.histc(iou.double(), bins=bins, min=0.0, max=1.0) if iou.numel() else torch.zeros(bins)
    statistics: dict[str, Any] = {
        "objects": iou.numel(),
        "quantiles": quantiles(iou),
        "histogram": {
            "edges": [round(i * HISTOGRAM_BIN, 2) for i in range(bins + 1)],
            "counts": counts.long().tolist(),
        },
    }
    for threshold in COUNTED_IOUS:
        share = float((iou >= threshold).double().mean()) if iou.numel() else None
        statistics[f"share_iou_{round(threshold * 100):03d}"] = share
    return statistics


def edge_errors(boxes: Tensor, gt_boxes: Tensor) -> Tensor:
    """Signed edge errors of predicted boxes, as a fraction of the annotated box's size.

    Positive means the predicted edge lies *outside* the annotated box (the box too large on that
    side): ``(gt_x1 - x1) / gt_w``, ``(gt_y1 - y1) / gt_h``, ``(x2 - gt_x2) / gt_w``, ``(y2 - gt_y2) / gt_h``.

    Args:
        boxes (Tensor[O, 4]), gt_boxes (Tensor[O, 4]): xyxy pixels, ``gt_boxes`` of positive size.

    Returns:
        Tensor[O, 4]: left, top, right, bottom (:data:`~gfocal.analysis.distributions.EDGES`).
    """
    size = (gt_boxes[:, 2:] - gt_boxes[:, :2]).repeat(1, 2)  # [O, 4]: w, h, w, h
    outward = boxes.new_tensor([-1.0, -1.0, 1.0, 1.0])
    return (boxes - gt_boxes) * outward / size


def box_error_statistics(boxes: Tensor, gt_boxes: Tensor) -> dict[str, Any]:
    """Which way matched boxes miss: per edge the quartiles of :func:`edge_errors`, and the medians of the
    width and height ratios (predicted / annotated) and of the centre shift (as a fraction of the
    annotated width or height; positive = right or down).

    Args:
        boxes (Tensor[O, 4]), gt_boxes (Tensor[O, 4]): matched pairs, xyxy pixels.
    """
    errors = edge_errors(boxes, gt_boxes)  # [O, 4]
    size, gt_size = boxes[:, 2:] - boxes[:, :2], gt_boxes[:, 2:] - gt_boxes[:, :2]  # [O, 2]
    shift = ((boxes[:, :2] + boxes[:, 2:]) - (gt_boxes[:, :2] + gt_boxes[:, 2:])) / 2 / gt_size  # [O, 2]
    ratio = size / gt_size
    edges = {}
    for j, edge in enumerate(EDGES):
        found = quantiles(errors[:, j])
        edges[edge] = {"median": found["p50"], "q25": found["p25"], "q75": found["p75"]}
    return {
        "objects": len(boxes),
        "edges": edges,
        "width_ratio": quantiles(ratio[:, 0])["p50"],
        "height_ratio": quantiles(ratio[:, 1])["p50"],
        "centre_shift_x": quantiles(shift[:, 0])["p50"],
        "centre_shift_y": quantiles(shift[:, 1])["p50"],
    }


def score_iou_correlation(pairs: list[ImagePairs], min_iou: float = 0.3) -> dict[str, Any]:
    """Spearman's rank correlation between each detection's score and its best same-class IoU, over the
    detections with IoU >= ``min_iou`` (those that found some object; background is another question).

    Returns:
        ``{"spearman": value in [-1, 1] or None (fewer than 2 detections, or one side constant), "detections": n}``.
    """
    scores = torch.cat([image.scores for image in pairs])
    ious = torch.cat([image.best_iou() for image in pairs])
    kept = ious >= min_iou
    return {"spearman": rank_correlation(scores[kept].numpy(), ious[kept].numpy()), "detections": int(kept.sum())}


def duplicate_statistics(pairs: list[ImagePairs], score_threshold: float = 0.3) -> dict[str, Any]:
    """How many detections COCO counts as duplicates (:func:`greedy_duplicates`) at IoU 0.5 and 0.75.

    Returns:
        ``detections`` (all), ``confident`` (score >= ``score_threshold``); per IoU, e.g. ``iou_050``:
        ``count`` (among all), ``count_confident`` and ``share_confident`` (of the confident detections).
        A detection's status depends only on higher-scoring ones, so the confident ones' is the same
        whether or not the others are there.
    """
    confident = torch.cat([image.scores >= score_threshold for image in pairs])
    statistics: dict[str, Any] = {"detections": len(confident), "confident": int(confident.sum())}
    for threshold in COUNTED_IOUS:
        duplicate = torch.cat([greedy_duplicates(image, threshold) for image in pairs])
        count = int((duplicate & confident).sum())
        statistics[f"iou_{round(threshold * 100):03d}"] = {
            "count": int(duplicate.sum()),
            "count_confident": count,
            "share_confident": count / int(confident.sum()) if confident.any() else None,
        }
    return statistics


def diagnose_localisation(
    records: Any,
    detections: Mapping[int, Mapping[str, Any]],
    score_threshold: float = 0.3,
    found_iou: float = 0.5,
    ranked_iou: float = 0.3,
    max_detections: int = 100,
) -> dict[str, Any]:
    """The whole diagnosis of one detector on one dataset, JSON-ready.

    Args:
        records, detections: see :func:`~gfocal.analysis.matching.image_pairs`.
        score_threshold: the least score of a detection a user would keep, in [0, 1]; the best
            matches, edge errors and duplicate shares are of those detections.
        found_iou: the least IoU of an object's best match for its edge errors to count, in (0, 1]
            (an object found at all, as AP50 counts it).
        ranked_iou: the least IoU of a detection in the score-IoU correlation, in (0, 1].
        max_detections: detections per image that COCO scores (:func:`~gfocal.engine.evaluate.evaluate_detections`).

    Returns:
        ``settings``; ``best_iou`` (:func:`iou_statistics` among confident detections) and
        ``best_iou_any_score`` (among all); ``box_errors`` (:func:`box_error_statistics` of the objects
        found at ``found_iou``); ``score_iou`` (:func:`score_iou_correlation`); ``duplicates``
        (:func:`duplicate_statistics`); ``oracles``, ``largest_ap75_gain`` and ``verdict``
        (:func:`~gfocal.analysis.localisation_oracles.oracle_decomposition`).
    """
    if not 0.0 <= score_threshold <= 1.0:
        raise ValueError(f"score_threshold must be in [0, 1], got {score_threshold}")
    for name, value in (("found_iou", found_iou), ("ranked_iou", ranked_iou)):
        if not 0.0 < value <= 1.0:
            raise ValueError(f"{name} must be in (0, 1], got {value}")
    pairs = image_pairs(records, detections)
    matches = object_matches(pairs, score_threshold)
    found = matches.iou >= found_iou
    oracles = oracle_decomposition(records, pairs, max_detections)
    return {
        "settings": {
            "score_threshold": score_threshold,
            "found_iou": found_iou,
            "ranked_iou": ranked_iou,
            "max_detections": max_detections,
            "images": len(pairs),
        },
        "best_iou": iou_statistics(matches.iou),
        "best_iou_any_score": iou_statistics(matches.iou_any_score),
        "box_errors": box_error_statistics(matches.boxes[found], matches.gt_boxes[found]),
        "score_iou": score_iou_correlation(pairs, ranked_iou),
        "duplicates": duplicate_statistics(pairs, score_threshold),
        **oracles,
    }
