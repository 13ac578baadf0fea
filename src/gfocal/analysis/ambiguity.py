"""Ambiguity mining over a labelled dataset: one row of statistics per annotation, ranked.

For every image the model runs once; each annotation gets

- the distributions at its probe location (:mod:`gfocal.analysis.probe`), so every
  annotation has statistics even when no detection matches it: the per-edge
  statistics, the box ambiguity score (:func:`gfocal.analysis.distributions.ambiguity_score`)
  and the agreement of each annotated edge with its distribution (``annotated_nll``,
  ``annotated_at_second_peak``, the box ``disagreement``);
- the matched detection, if any (class-aware IoU, :func:`match_detections`), with its
  own ambiguity score (``det_ambiguity``).

Annotations are ranked by ``ambiguity`` (descending; rank 1 = most ambiguous) and
by ``disagreement``; images by their most ambiguous annotation.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gfocal.analysis.distributions import annotation_statistics, bin_positions, distribution_statistics, to_records
from gfocal.analysis.matching import match_detections
from gfocal.analysis.probe import PROBE_KINDS, AnnotationProbe, probe_and_detect
from gfocal.data import Annotation, DatasetRecords, DetectionDataset, ImageRecord
from gfocal.engine.inference_loop import LoadedImage, run_over_images
from gfocal.models import GFLDetector

__all__ = [
    "AmbiguityAnalysis",
    "AnnotationDistributions",
    "analyze_ambiguity",
    "annotation_targets",
    "CSV_COLUMNS",
    "IMAGE_COLUMNS",
]

_PER_EDGE = (
    "position", "std", "std_bins", "entropy", "focus", "num_modes", "second_peak_ratio",
    "second_peak_position", "annotated_offset", "annotated_nll", "annotated_at_second_peak",
)  # fmt: skip
CSV_COLUMNS = (
    ["rank", "disagreement_rank", "annotation_id", "image_id", "file_name", "class_name", "label"]
    + ["x0", "y0", "x1", "y1", "ambiguity", "disagreement", "bimodal_edges"]
    + ["probe", "probe_level", "probe_score", "matched", "matched_iou", "matched_score", "det_ambiguity"]
    + ["det_x0", "det_y0", "det_x1", "det_y1"]
    + [f"{edge}_{name}" for name in _PER_EDGE for edge in ("left", "top", "right", "bottom")]
)
#: The columns of the per-image ranking (``images.csv`` and the report's image table).
IMAGE_COLUMNS = (
    "rank", "image_id", "file_name", "annotations", "max_ambiguity", "mean_ambiguity", "max_disagreement",
    "bimodal_edges",
)  # fmt: skip


@dataclass(frozen=True)
class AnnotationDistributions:
    """What the report draws for one annotation (numpy, original-image pixels).

    probs (float [4, B]) and positions (float [4, B]): the probe's edge distributions and where
    each bin lies on the image axis; detection_box (float [4] | None): the matched detection.
    """

    probs: np.ndarray
    positions: np.ndarray
    probe_box: np.ndarray
    detection_box: np.ndarray | None


@dataclass
class AmbiguityAnalysis:
    """The result of :func:`analyze_ambiguity`.

    rows: one dict per annotation, sorted by rank (columns :data:`CSV_COLUMNS`, plus ``extra``:
        the dataset's own per-annotation fields, and ``image_index``).
    images: one dict per image with annotations, sorted by ``max_ambiguity`` descending.
    distributions: per row (same order as ``rows``), for drawing.
    records: the dataset analysed.
    """

    rows: list[dict[str, Any]]
    images: list[dict[str, Any]]
    distributions: list[AnnotationDistributions]
    records: DatasetRecords
    settings: dict[str, Any] = field(default_factory=dict)


def analyze_ambiguity(
    model: GFLDetector,
    records: DatasetRecords,
    batch_size: int = 4,
    iou_threshold: float = 0.5,
    max_images: int | None = None,
    progress: bool = True,
    workers: int = 0,
) -> AmbiguityAnalysis:
    """Run the model over a labelled dataset and rank its annotations by ambiguity.

    Args:
        model: a trained detector with a distribution head; its device is used.
        records: from :func:`gfocal.data.load_dataset` (COCO, VOC or YOLO); crowd regions are skipped;
            annotations without an id of their own (YOLO) are named ``"<file name>#<index in the image>"``.
        batch_size: images per forward pass.
        iou_threshold: least IoU for a detection to match an annotation of its class.
        max_images: analyse only the first images (None: all).
        progress: show a tqdm bar.
        workers: image-decoding processes (:func:`~gfocal.engine.inference_loop.run_over_images`).

    Returns:
        :class:`AmbiguityAnalysis`.
    """
    device = next(model.parameters()).device
    chosen = [i for i, r in enumerate(records.images[:max_images]) if any(not a.iscrowd for a in r.annotations)]

    def probe(images: list[Tensor], items: list[LoadedImage]) -> list[tuple[Any, ...]]:
        targets, kept = zip(*(annotation_targets(records.images[i.index], i.original_size, device) for i in items))
        probes, detections = probe_and_detect(model, images, list(targets))
        return list(zip(probes, detections, targets, kept))

    rows: list[dict[str, Any]] = []
    drawings: list[AnnotationDistributions] = []
    loop = run_over_images(
        DetectionDataset(records), probe, device, batch_size, workers, chosen, progress=progress, desc="analyse"
    )
    for item, (annotation_probe, detection, target, kept_annotations) in loop:
        record = records.images[item.index]
        image_rows, image_drawings = _image_rows(
            item.index, record, kept_annotations, annotation_probe, detection, target, records, iou_threshold
        )
        rows += image_rows
        drawings += image_drawings
    order = _rank(rows)
    rows, drawings = [rows[i] for i in order], [drawings[i] for i in order]
    settings = {"iou_threshold": iou_threshold, "num_images": len(chosen), "num_annotations": len(rows)}
    return AmbiguityAnalysis(rows, _image_ranking(rows), drawings, records, settings)


def annotation_targets(
    record: ImageRecord, size: tuple[int, int], device: torch.device | str = "cpu"
) -> tuple[dict[str, Tensor], list[Annotation]]:
    """The record's non-crowd boxes (float [M, 4] xyxy) in the pixels of its decoded image of ``size`` (h, w)
    and their labels (int64 [M]), on ``device``; and those annotations (each with an id)."""
    # A format without annotation ids (YOLO) gets "<file name>#<index in the image>".
    annotations = [
        a if a.id is not None else dataclasses.replace(a, id=f"{record.file_name}#{k}")
        for k, a in enumerate(record.annotations)
        if not a.iscrowd
    ]
    boxes = torch.tensor([a.box for a in annotations], dtype=torch.float32).reshape(-1, 4)
    height, width = size
    if (height, width) != (record.height, record.width):  # size taken on trust by the reader
        boxes = boxes * torch.tensor([width / record.width, height / record.height] * 2)
    labels = torch.tensor([a.label for a in annotations], dtype=torch.long)
    return {"boxes": boxes.to(device), "labels": labels.to(device)}, annotations


def _image_rows(
    index: int,
    record: ImageRecord,
    annotations: list[Annotation],
    probe: AnnotationProbe,
    detection: dict[str, Tensor],
    target: dict[str, Tensor],
    records: DatasetRecords,
    iou_threshold: float,
) -> tuple[list[dict[str, Any]], list[AnnotationDistributions]]:
    """Rows and drawings of one image's M annotations (``target`` and ``probe`` in the same order)."""
    stats = distribution_statistics(probe.probs, probe.boxes, probe.bin_size)
    stats.update(annotation_statistics(probe.probs, probe.annotated_bins, target["boxes"], probe.boxes))
    stats["bimodal_edges"] = (stats["num_modes"] >= 2).sum(-1)
    match = match_detections(
        detection["boxes"], detection["labels"], detection["scores"], target["boxes"], target["labels"], iou_threshold
    )
    matched = match.detection >= 0
    det = match.detection.clamp_min(0)
    has_detections = len(detection["boxes"]) > 0
    det_stats = distribution_statistics(
        detection["box_distributions"][det], detection["boxes"][det], detection["bin_size"][det]
    ) if has_detections else None  # fmt: skip
    extra = {
        "boxes": target["boxes"],
        "probe_kind": probe.kinds,
        "probe_level": probe.levels,
        "probe_score": probe.scores,
        "matched": matched,
        "matched_iou": match.iou,
    }
    rows = to_records(stats, extra)
    positions = bin_positions(probe.probs, probe.boxes, probe.bin_size)
    drawings = []
    for k, (row, annotation) in enumerate(zip(rows, annotations)):
        row.update(
            annotation_id=annotation.id,
            image_id=record.id,
            file_name=record.file_name,
            label=annotation.label,
            class_name=records.class_names[annotation.label],
            image_index=index,
            extra=_json_safe(annotation.extra),
        )
        row["probe"] = PROBE_KINDS[row.pop("probe_kind")]
        is_matched = bool(matched[k])
        det_box = detection["boxes"][det[k]].tolist() if is_matched else [None] * 4
        row.update(
            matched_score=float(detection["scores"][det[k]]) if is_matched else None,
            det_ambiguity=float(det_stats["ambiguity"][k]) if is_matched and det_stats is not None else None,
            **dict(zip(("det_x0", "det_y0", "det_x1", "det_y1"), det_box)),
        )
        drawings.append(
            AnnotationDistributions(
                probs=probe.probs[k].float().cpu().numpy(),
                positions=positions[k].float().cpu().numpy(),
                probe_box=probe.boxes[k].float().cpu().numpy(),
                detection_box=np.asarray(det_box, dtype=np.float32) if is_matched else None,
            )
        )
    return rows, drawings


def _rank(rows: list[dict[str, Any]]) -> list[int]:
    """Row order by ambiguity (missing last); sets ``rank`` and ``disagreement_rank`` (1-based)."""

    def key(name: str):
        return lambda i: (rows[i][name] is None, -(rows[i][name] or 0.0), i)

    for rank, i in enumerate(sorted(range(len(rows)), key=key("disagreement")), start=1):
        rows[i]["disagreement_rank"] = rank
    order = sorted(range(len(rows)), key=key("ambiguity"))
    for rank, i in enumerate(order, start=1):
        rows[i]["rank"] = rank
    return order


def _image_ranking(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per image: annotation count, max/mean ambiguity, max disagreement, bimodal edges."""
    images: dict[int, dict[str, Any]] = {}
    for row in rows:
        entry = images.setdefault(
            row["image_index"],
            {"image_id": row["image_id"], "file_name": row["file_name"], "annotations": 0, "_scores": [], "_dis": [], "bimodal_edges": 0},
        )  # fmt: skip
        entry["annotations"] += 1
        if row["ambiguity"] is not None:
            entry["_scores"].append(row["ambiguity"])
            entry["_dis"].append(row["disagreement"])
            entry["bimodal_edges"] += row["bimodal_edges"]
    ranking = []
    for entry in images.values():
        scores, dis = entry.pop("_scores"), entry.pop("_dis")
        entry["max_ambiguity"] = max(scores) if scores else None
        entry["mean_ambiguity"] = sum(scores) / len(scores) if scores else None
        entry["max_disagreement"] = max(dis) if dis else None
        ranking.append(entry)
    ranking.sort(key=lambda e: (e["max_ambiguity"] is None, -(e["max_ambiguity"] or 0.0)))
    for rank, entry in enumerate(ranking, start=1):
        entry["rank"] = rank
    return ranking


def _json_safe(value: Any) -> Any:
    """The dataset's extra fields as plain JSON (non-finite floats to None, unknown types to str)."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)
