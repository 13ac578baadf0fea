"""Oracles that each make one part of a detector perfect, and the AP each would gain.

The AP75 a detector loses may lie in its boxes (the regression), in the order of its scores (a
good box ranked below a poor one) or in duplicates (a second box on an object is a false
positive). Each oracle (:data:`ORACLES`) repairs one of them in the detections, leaving the rest
as it was, and COCO evaluation measures how much AP that gives back (:func:`oracle_decomposition`).

Shape letters: K detections of one image, M its annotations.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from gfocal.analysis.matching import ImagePairs, greedy_duplicates
from gfocal.engine.evaluate import evaluate_detections

__all__ = ["ORACLES", "ORACLE_IOU", "largest_gain", "oracle_decomposition", "oracle_detections", "verdict"]

#: Each oracle: what it makes perfect, and what its AP gain measures the loss of.
ORACLES = {
    "perfect_boxes": "the box regression",
    "perfect_ranking": "the ranking (the quality score)",
    "no_duplicates": "duplicate handling",
}
#: The IoU at which an oracle takes a detection to be of an object (perfect boxes, duplicates).
ORACLE_IOU = 0.5


def oracle_detections(pairs: list[ImagePairs], oracle: str) -> dict[int, dict[str, Tensor]]:
    """The detections with one thing made perfect (:data:`ORACLES`), everything else as it was.

    - ``perfect_boxes``: a detection whose best same-class annotation has IoU >= 0.5 takes that
      annotation's box (scores kept);
    - ``perfect_ranking``: every score becomes the detection's best same-class IoU (0 when none);
    - ``no_duplicates``: the :func:`greedy_duplicates` at IoU 0.5 are removed.
    ``original`` gives the detections unchanged.

    Returns:
        image index -> {"boxes" [K', 4], "scores" [K'], "labels" [K']}, for :func:`evaluate_detections`.
    """
    if oracle not in (*ORACLES, "original"):
        raise ValueError(f"unknown oracle {oracle!r}; known: original, {', '.join(ORACLES)}")
    changed = {}
    for index, image in enumerate(pairs):
        boxes, scores, labels = image.boxes, image.scores, image.labels
        if oracle == "perfect_boxes" and image.iou.shape[1]:
            best_iou, best = image.iou.max(dim=1)  # [K]
            boxes = torch.where((best_iou >= ORACLE_IOU).unsqueeze(1), image.gt_boxes[best], boxes)
        elif oracle == "perfect_ranking":
            scores = image.best_iou()
        elif oracle == "no_duplicates":
            kept = ~greedy_duplicates(image, ORACLE_IOU)
            boxes, scores, labels = boxes[kept], scores[kept], labels[kept]
        changed[index] = {"boxes": boxes, "scores": scores, "labels": labels}
    return changed


def oracle_decomposition(records: Any, pairs: list[ImagePairs], max_detections: int = 100) -> dict[str, Any]:
    """COCO AP of the detections and of each oracle's (:func:`oracle_detections`), the gains, and a verdict.

    An oracle's gain is the AP that its part of the detector loses: perfect boxes measure the box
    regression, perfect ranking the score's ordering of good and poor boxes, no duplicates the
    suppression of repeated detections. The gains overlap (a duplicate is also a poorly ranked box),
    so they do not add up to what is lost; the largest names where to look first.

    Returns:
        ``oracles``: per name (``original`` and :data:`ORACLES`) ``AP``, ``AP50``, ``AP75``,
        ``AP_per_iou`` (see :func:`evaluate_detections`) and, for the oracles, ``gain`` (``AP``,
        ``AP50``, ``AP75`` minus the original's); ``largest_ap75_gain``: the oracle with the largest
        AP75 gain (None when none gains); ``verdict``: one line that names it (:func:`verdict`).
    """
    oracles = {}
    for name in ("original", *ORACLES):
        metrics = evaluate_detections(records, oracle_detections(pairs, name), max_detections)
        oracles[name] = {key: metrics[key] for key in ("AP", "AP50", "AP75", "AP_per_iou")}
    for name in ORACLES:
        oracles[name]["gain"] = {key: oracles[name][key] - oracles["original"][key] for key in ("AP", "AP50", "AP75")}
    return {"oracles": oracles, "largest_ap75_gain": largest_gain(oracles), "verdict": verdict(oracles)}


def largest_gain(oracles: Mapping[str, Mapping[str, Any]], metric: str = "AP75") -> str | None:
    """The oracle (a key of :data:`ORACLES`) whose ``metric`` gains most; None when none gains."""
    gains = {name: oracles[name]["gain"][metric] for name in ORACLES}
    largest = max(gains, key=lambda name: gains[name])
    return largest if gains[largest] > 0 else None


def verdict(oracles: Mapping[str, Mapping[str, Any]]) -> str:
    """One line: the original AP75 and which oracle raises it most (see :func:`oracle_decomposition`)."""
    listed = ", ".join(f"{name.replace('_', ' ')} {oracles[name]['gain']['AP75']:+.3f}" for name in ORACLES)
    start = f"AP75 {oracles['original']['AP75']:.3f}"
    largest = largest_gain(oracles)
    found = "no oracle raises it" if largest is None else f"lost most in {ORACLES[largest]}"
    return f"{start}: {found}; AP75 gains: {listed}"
