"""Merging the detections of overlapping tiles into the detections of the whole image.

Shape letters:
    K  detections from all tiles of one image      G  merged detections
    B  bins per edge distribution (``reg_max + 1``)

Input and output are detection dicts as the model returns them (boxes xyxy in image
pixels): ``{"boxes" [K, 4], "scores" [K], "labels" [K]}``, optionally with
``box_distributions`` [K, 4, B], ``edge_std`` [K, 4] and ``bin_size`` [K, 4]. A merged box
carries, per edge, the distribution of the detection its edge was taken from (for the
distribution-aware merge: the most certain one), so per-edge statistics still apply.

- :func:`merge_nms`: class-aware NMS over all tiles: the best box of a group stays, the others go.
- :func:`merge_nmm`: SAHI-style greedy non-maximum merging: the best box absorbs the boxes whose
  intersection over the smaller box exceeds a threshold, and becomes their union.
- :func:`merge_distribution_aware`: boxes that are the same object are fused edge by edge, each edge
  the certainty-weighted mean of theirs (score / variance of its learned distribution), or taken from
  the box most certain of it; an edge on an inner tile border is distrusted, since the object may go on
  beyond it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torchvision.ops import batched_nms

from gfocal.tiling.clusters import OUTWARD, greedy_clusters, intersections, matching_pairs

__all__ = ["MERGES", "merge_nms", "merge_nmm", "merge_distribution_aware", "same_object"]

_PER_EDGE = ("box_distributions", "edge_std", "bin_size")


def merge_nms(detections: dict[str, Tensor], iou_threshold: float = 0.5) -> dict[str, Tensor]:
    """Class-aware NMS over the detections of all tiles; sorted by score.

    Args:
        detections: ``{"boxes" [K, 4], "scores" [K], "labels" [K], ...}`` in image pixels.
        iou_threshold: a box overlapping a better one of its class by more than this IoU is removed.
    """
    keep = batched_nms(detections["boxes"], detections["scores"], detections["labels"], iou_threshold)
    return {key: value[keep] for key, value in detections.items()}


def merge_nmm(detections: dict[str, Tensor], ios_threshold: float = 0.5) -> dict[str, Tensor]:
    """SAHI-style greedy non-maximum merging: each keeper becomes the union of the boxes it absorbs.

    In descending score, a detection not yet absorbed absorbs every not yet absorbed detection
    of its class whose intersection over the smaller of the two boxes is at least
    ``ios_threshold``; the merged box is their union, its score the keeper's.

    Args:
        detections: ``{"boxes" [K, 4], "scores" [K], "labels" [K], ...}`` in image pixels.
        ios_threshold: intersection over the smaller area, in (0, 1].

    Returns:
        G merged detections, sorted by score.
    """
    boxes = detections["boxes"]
    area = (boxes[:, 2:] - boxes[:, :2]).prod(-1)  # [K]

    def overlaps(rows: Tensor, cols: Tensor) -> Tensor:
        smaller = area[rows, None].minimum(area[None, cols]).clamp_min(1e-6)
        return intersections(boxes[rows], boxes[cols]) / smaller >= ios_threshold

    clusters = greedy_clusters(detections["scores"], matching_pairs(len(boxes), detections["labels"], overlaps))
    outward = _outward(boxes)  # [K, 4]
    return _fuse(
        detections, clusters, edge_values=_cluster_max(outward, clusters) * boxes.new_tensor(OUTWARD), key=outward
    )


def same_object(
    boxes: Tensor, cut: Tensor, tolerance: float, iou_threshold: float | None = None
) -> Callable[[Tensor, Tensor], Tensor]:
    """The matching rule of the distribution-aware merge: do two boxes describe the same object?

    Either their IoU exceeds ``iou_threshold`` (what NMS calls one object), or they overlap and each
    pair of corresponding edges is consistent:

    - neither edge cut by a tile border: they agree within ``tolerance`` of the larger box's extent
      along that axis (so two touching objects, whose near edges lie a box apart, stay two);
    - one edge cut: the uncut edge lies at or beyond the cut one (the cut box saw only part of the object);
    - both cut: nothing to compare (both are lower bounds of the object's extent).

    Args:
        boxes (Tensor[K, 4]): xyxy in image pixels.
        cut (Tensor[K, 4] bool): edges on an inner tile border (:func:`gfocal.tiling.slicing.cut_edges`).
        tolerance: fraction of the box extent, e.g. 0.25.
        iou_threshold: boxes overlapping by more than this IoU match whatever their edges; None: edges only.

    Returns:
        ``match(rows, cols)`` -> Tensor[I, J] bool, symmetric.
    """
    size = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)  # [K, 4]: width, height, width, height
    area = size[:, :2].prod(-1)  # [K]
    outward = _outward(boxes)  # [K, 4]

    def match(rows: Tensor, cols: Tensor) -> Tensor:
        allowed = tolerance * size[rows, None].maximum(size[None, cols])  # [I, J, 4]
        beyond = outward[None, cols] - outward[rows, None]  # [I, J, 4]: > 0 where col's edge lies further out
        cut_row, cut_col = cut[rows, None], cut[None, cols]  # [I, 1, 4], [1, J, 4]
        consistent = torch.where(
            cut_row & cut_col,
            True,
            torch.where(cut_row, beyond >= -allowed, torch.where(cut_col, beyond <= allowed, beyond.abs() <= allowed)),
        )  # [I, J, 4]
        overlap = intersections(boxes[rows], boxes[cols])  # [I, J]
        matched = consistent.all(-1) & (overlap > 0)
        if iou_threshold is None:
            return matched
        iou = overlap / (area[rows, None] + area[None, cols] - overlap).clamp_min(1e-6)
        return matched | (iou > iou_threshold)

    return match


def merge_distribution_aware(
    detections: dict[str, Tensor],
    cut: Tensor,
    tolerance: float = 0.25,
    iou_threshold: float | None = 0.5,
    border_weight: float = 0.0,
    min_std: float = 0.5,
    edges: str = "mean",
) -> dict[str, Tensor]:
    """Fuse the detections that are the same object, edge by edge, by each edge's certainty.

    Detections are grouped greedily around keepers in descending score (:func:`same_object`
    decides a match). Each edge of a merged box is the members' edges' mean weighted by
    ``score / std^2`` (or, with ``edges="most_certain"``, the edge of the member of the largest weight), ``std``
    the standard deviation of that edge's learned distribution in pixels (at least ``min_std``):
    a sharp distribution is a certain edge (PAPER.md, "Two
    observations": the spread of a distribution tracks the ambiguity of the boundary). An edge on
    an inner tile border is weighted ``border_weight`` times less (by default not at all): the
    detector clipped it there, and the object may go on. When every member's edge is cut, the
    outermost is taken (each is a lower bound). The merged score is the keeper's.

    The defaults were chosen on a real photograph of tree crowns apart from the one reported
    (docs/tiling.md, #28): NMS's IoU rule besides the edge rule, at a tolerance of 0.25, and the
    certainty-weighted mean of the edges. (On synthetic scenes of touching shapes the most certain
    edge at a tolerance of 0.5 had scored higher; on the crowns' soft boundaries the most certain
    edge is worse than the best-scoring box's, and a 50% tolerance joins neighbouring crowns.)

    Args:
        detections: ``{"boxes" [K, 4], "scores" [K], "labels" [K], "edge_std" [K, 4], ...}``, image pixels.
        cut (Tensor[K, 4] bool): edges on an inner tile border.
        tolerance, iou_threshold: see :func:`same_object`.
        border_weight: weight factor of a cut edge, in [0, 1].
        min_std: floor of the standard deviation, pixels (a one-bin distribution would get an infinite weight).
        edges: "mean" (weighted mean of the members' edges) or "most_certain" (the largest weight's edge).

    Returns:
        G merged detections, sorted by score.
    """
    if "edge_std" not in detections:
        raise KeyError("the distribution-aware merge needs 'edge_std': predict with return_distributions=True")
    if edges not in ("mean", "most_certain"):
        raise ValueError(f"edges must be 'mean' or 'most_certain', got {edges!r}")
    boxes, scores = detections["boxes"], detections["scores"]
    pairs = matching_pairs(len(boxes), detections["labels"], same_object(boxes, cut, tolerance, iou_threshold))
    clusters = greedy_clusters(scores, pairs)
    certainty = scores[:, None] / detections["edge_std"].clamp_min(min_std).square()  # [K, 4]
    weight = torch.where(cut, border_weight * certainty, certainty)  # [K, 4]
    num = _cluster_sum(weight * boxes, clusters)  # [G, 4]
    den = _cluster_sum(weight, clusters)  # [G, 4]
    outward = _outward(boxes)
    outermost = _cluster_max(outward, clusters) * boxes.new_tensor(OUTWARD)  # [G, 4]
    trusted = den > 0
    # Per edge, the member of the largest weight, or the outermost one if all are cut: its distribution is kept.
    key = torch.where(trusted[clusters], weight, outward)
    if edges == "mean":
        edge_values = torch.where(trusted, num / den.clamp_min(torch.finfo(den.dtype).tiny), outermost)
    else:
        chosen = _argmax_per_cluster(key, clusters, len(den))  # [G, 4]
        edge_values = boxes[chosen, torch.arange(4, device=chosen.device)]
    return _fuse(detections, clusters, edge_values, key)


def _outward(boxes: Tensor) -> Tensor:
    """Tensor[K, 4]: edge coordinates signed so that larger is further out of the box."""
    return boxes * boxes.new_tensor(OUTWARD)


def _cluster_sum(values: Tensor, clusters: Tensor) -> Tensor:
    """values (Tensor[K, 4]) summed per cluster -> Tensor[G, 4]."""
    return values.new_zeros(int(clusters.max()) + 1 if len(clusters) else 0, 4).index_add_(0, clusters, values)


def _cluster_max(values: Tensor, clusters: Tensor) -> Tensor:
    """values (Tensor[K, 4]) maximised per cluster -> Tensor[G, 4]."""
    out = values.new_full((int(clusters.max()) + 1 if len(clusters) else 0, 4), float("-inf"))
    return out.scatter_reduce_(0, clusters[:, None].expand(-1, 4), values, "amax")


def _fuse(detections: dict[str, Tensor], clusters: Tensor, edge_values: Tensor, key: Tensor) -> dict[str, Tensor]:
    """One detection per cluster: ``edge_values`` (Tensor[G, 4]) as its box, the keeper's score and label,
    and per edge the distribution fields of the member with the largest ``key`` (Tensor[K, 4])."""
    num = len(edge_values)
    scores = detections["scores"]
    keeper = _argmax_per_cluster(scores[:, None].expand(-1, 4).contiguous(), clusters, num)[:, 0]  # [G]
    merged = {"boxes": edge_values, "scores": scores[keeper], "labels": detections["labels"][keeper]}
    if any(name in detections for name in _PER_EDGE):
        source = _argmax_per_cluster(key, clusters, num)  # [G, 4]
        edges = torch.arange(4, device=source.device)
        for name in _PER_EDGE:
            if name in detections:
                merged[name] = detections[name][source, edges]  # [G, 4] or [G, 4, B]
    order = merged["scores"].argsort(descending=True, stable=True)
    return {name: value[order] for name, value in merged.items()}


def _argmax_per_cluster(key: Tensor, clusters: Tensor, num: int) -> Tensor:
    """Index of the detection with the largest ``key`` (Tensor[K, 4]) per cluster and edge -> Tensor[G, 4]
    (the first such detection on ties)."""
    best = key.new_full((num, 4), float("-inf")).scatter_reduce_(0, clusters[:, None].expand(-1, 4), key, "amax")
    is_best = key == best[clusters]  # [K, 4]
    index = torch.arange(len(key), device=key.device)[:, None].expand(-1, 4)
    candidates = torch.where(is_best, index, len(key))  # [K, 4]
    return candidates.new_full((num, 4), len(key)).scatter_reduce_(
        0, clusters[:, None].expand(-1, 4), candidates, "amin"
    )


#: The merges by name, as ``--merge`` spells them; each takes ``(detections, cut)``.
MERGES: dict[str, Callable[[dict[str, Tensor], Tensor], dict[str, Tensor]]] = {
    "dist": merge_distribution_aware,
    "nms": lambda detections, cut: merge_nms(detections),
    "nmm": lambda detections, cut: merge_nmm(detections),
}
