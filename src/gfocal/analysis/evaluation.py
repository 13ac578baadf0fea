"""How well a score finds the objects whose edges are ambiguous by construction (synthetic data).

The synthetic generator (:mod:`gfocal.data.synthetic`) records, per annotation,
``ambiguous_edges``: which edges it blurred or partly occluded. These functions
turn that into labels and measure a score against them with the AUROC: the
probability that a random ambiguous object scores above a random clean one
(0.5 = chance, 1 = perfect ranking). :func:`probe_statistics` and
:func:`auroc_table` do it for every statistic of a model's distributions at the
annotated boxes (``benchmarks/ambiguity_auroc.py`` and its test).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from gfocal.analysis.distributions import EDGES, annotation_statistics, distribution_statistics
from gfocal.analysis.probe import AnnotationProbe, probe_annotations
from gfocal.data import DatasetRecords, DetectionDataset
from gfocal.engine.inference_loop import LoadedImage, run_over_images

__all__ = ["auroc", "ambiguity_labels", "edge_ambiguity_labels", "probe_statistics", "auroc_table"]


def auroc(scores: Sequence[float] | np.ndarray, labels: Sequence[bool] | np.ndarray) -> float:
    """Area under the ROC curve, ties counted half (the Mann-Whitney U statistic).

    Args:
        scores (float [K]): higher means "more likely positive"; NaN scores are dropped.
        labels (bool [K]): True for positives.

    Returns:
        AUROC in [0, 1]; NaN when either class is empty.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    if scores.shape != labels.shape:
        raise ValueError(f"scores {scores.shape} and labels {labels.shape} differ in shape")
    keep = ~np.isnan(scores)
    scores, labels = scores[keep], labels[keep]
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    ranks[order] = np.arange(1, len(scores) + 1)
    # Average ranks over ties.
    unique, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    rank_sums = np.bincount(inverse, weights=ranks)
    ranks = (rank_sums / counts)[inverse]
    u = ranks[labels].sum() - positives * (positives + 1) / 2
    return float(u / (positives * negatives))


def edge_ambiguity_labels(extras: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """bool [K, 4]: edge e of annotation k is blurred or occluded (``extra["ambiguous_edges"]``)."""
    labels = np.zeros((len(extras), 4), dtype=bool)
    for k, extra in enumerate(extras):
        edges = extra.get("ambiguous_edges")
        if not isinstance(edges, Mapping):
            raise KeyError(
                f"annotation {k} has no 'ambiguous_edges' record (synthetic data from gfocal.data.synthetic?)"
            )
        labels[k] = [edges.get(edge) is not None for edge in EDGES]
    return labels


def ambiguity_labels(extras: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """bool [K]: the annotation has at least one blurred or occluded edge."""
    return edge_ambiguity_labels(extras).any(axis=1)


def probe_statistics(model: nn.Module, records: DatasetRecords, batch_size: int = 8) -> dict[str, np.ndarray]:
    """Probe every annotation of ``records`` (:func:`gfocal.analysis.probe_annotations`).

    Returns:
        per-edge statistics as float [K, 4] and per-box ones as [K], K the annotations in record order:
        those of :func:`distribution_statistics` and :func:`annotation_statistics`, and ``std_rel``, the
        std relative to the annotated box's width (left/right edges) or height (top/bottom).
    """

    def probe(images: list[Tensor], items: list[LoadedImage]) -> list[AnnotationProbe]:
        return probe_annotations(model, images, [item.target for item in items])

    collected: dict[str, list[np.ndarray]] = {}
    device = next(model.parameters()).device
    for item, image_probe in run_over_images(DetectionDataset(records), probe, device, batch_size):
        boxes = item.target["boxes"]
        stats = distribution_statistics(image_probe.probs, image_probe.boxes, image_probe.bin_size)
        stats.update(annotation_statistics(image_probe.probs, image_probe.annotated_bins, boxes, image_probe.boxes))
        width, height = (boxes[:, 2:] - boxes[:, :2]).unbind(-1)
        stats["std_rel"] = stats["std"] / torch.stack((width, height, width, height), -1)
        for key, value in stats.items():
            collected.setdefault(key, []).append(value.float().cpu().numpy())
    return {key: np.concatenate(values) for key, values in collected.items()}


def auroc_table(stats: dict[str, np.ndarray], records: DatasetRecords) -> dict[str, Any]:
    """AUROC of each statistic of :func:`probe_statistics` against the recorded ambiguous edges: per box (max and
    mean over edges) and per edge, and per kind of ambiguity (blur, occlusion) against clean objects.

    Returns:
        ``{"auroc": {name: AUROC}, "annotations": K, "ambiguous": objects with an ambiguous edge}``.
    """
    extras = [a.extra for image in records.images for a in image.annotations]
    box_labels, edge_labels = ambiguity_labels(extras), edge_ambiguity_labels(extras)
    table: dict[str, Any] = {"ambiguity (box score)": auroc(stats["ambiguity"], box_labels)}
    for name in ("focus", "std_bins", "std_rel", "entropy", "second_peak_ratio", "annotated_nll"):
        value = -stats[name] if name == "focus" else stats[name]
        table[f"{name}: box max"] = auroc(value.max(1), box_labels)
        table[f"{name}: box mean"] = auroc(value.mean(1), box_labels)
        table[f"{name}: per edge"] = auroc(value.reshape(-1), edge_labels.reshape(-1))
    table["bimodal (modes>=2): box any"] = auroc((stats["num_modes"] >= 2).any(1), box_labels)
    # By kind: objects with that kind of ambiguity (and no other) against clean ones.
    kinds = np.array([[e.get("ambiguous_edges", {}).get(edge) for edge in EDGES] for e in extras], dtype=object)
    for kind in ("blur", "occluded"):
        only = (kinds == kind).any(1) & ~((kinds != kind) & (kinds != None)).any(1)  # noqa: E711
        subset = only | ~box_labels
        table[f"ambiguity (box score), {kind} only vs clean"] = auroc(stats["ambiguity"][subset], only[subset])
        table[f"annotated_nll: box max, {kind} only vs clean"] = auroc(
            stats["annotated_nll"].max(1)[subset], only[subset]
        )
    return {"auroc": table, "annotations": len(box_labels), "ambiguous": int(box_labels.sum())}
