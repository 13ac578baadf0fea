"""Merge the detections of several views (test-time augmentation) or models (an ensemble), edge by edge.

Every view's detections (each already through the model's own NMS) are pooled and clustered:
the boxes NMS keeps across views lead a cluster each, and every other box joins the same-class
leader it overlaps most (it overlaps at least one by more than ``iou_threshold``, or NMS would have
kept it). A cluster becomes one box by one of :data:`FUSION_METHODS`:

- ``"nms"``: the leader alone (plain NMS over the pooled views);
- ``"wbf"``: weighted box fusion (Solovyev et al. 2021): each coordinate the score-weighted mean
  of the cluster's, without distributions;
- ``"distribution"``: each *edge* the mean of the cluster's edges weighted by ``score / std^2``
  of that edge's learned distribution, so a view that is sure of the left edge and unsure of the
  top one gives the fused box its left edge and little of its top. The fused std is the spread of
  the weighted mixture (the views' variances plus their disagreement).

The fused score is WBF's: the cluster's mean score times ``min(count, views) / views``, so that a
box only one of several views found is trusted less (``"nms"`` keeps the leader's score).

Shape letters: K pooled detections, L clusters, V views.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor
from torchvision.ops import batched_nms, box_iou
from tqdm import tqdm

from gfocal.data import DatasetRecords
from gfocal.data.image_io import decode_image
from gfocal.models import GFLDetector

__all__ = [
    "FUSION_METHODS",
    "TestTimeAugmentation",
    "cluster_detections",
    "fuse_detections",
    "fused_dataset_detections",
    "view_detections",
]

FusionMethod = Literal["nms", "wbf", "distribution"]
FUSION_METHODS: tuple[FusionMethod, ...] = ("nms", "wbf", "distribution")


def cluster_detections(
    boxes: Tensor, scores: Tensor, labels: Tensor, iou_threshold: float = 0.55
) -> tuple[Tensor, Tensor]:
    """Group pooled detections into clusters around the boxes class-aware NMS keeps.

    Args:
        boxes (Tensor[K, 4]) xyxy, scores (Tensor[K]), labels (Tensor[K] int64).

    Returns:
        (leaders Tensor[L] int64: the NMS-kept boxes by decreasing score, assign Tensor[K] int64: the
        cluster in 0..L-1 of each box).
    """
    leaders = batched_nms(boxes.float(), scores.float(), labels, iou_threshold)  # [L]
    overlap = box_iou(boxes.float(), boxes[leaders].float())  # [K, L]
    overlap = torch.where(labels.unsqueeze(1) == labels[leaders].unsqueeze(0), overlap, -1.0)
    overlap[leaders, torch.arange(len(leaders), device=boxes.device)] = 2.0  # a leader stays in its own cluster
    return leaders, overlap.argmax(dim=1) if len(leaders) else torch.zeros_like(labels)


def fuse_detections(
    detections: dict[str, Tensor],
    method: FusionMethod = "distribution",
    num_views: int = 1,
    iou_threshold: float = 0.55,
    min_std: float = 0.5,
    max_detections: int | None = None,
) -> dict[str, Tensor]:
    """One box per cluster of the pooled detections of ``num_views`` views (see the module doc).

    Args:
        detections: ``boxes`` [K, 4] xyxy pixels, ``scores`` [K], ``labels`` [K] int64, and for
            ``"distribution"`` ``edge_std`` [K, 4] (pixels, left, top, right, bottom).
        method: one of :data:`FUSION_METHODS`.
        num_views: how many views or models were pooled (>= 1), for the score.
        iou_threshold: least IoU with a cluster's leader to join it.
        min_std: stds below this (pixels) count as this: no edge outweighs all others unboundedly.
        max_detections: keep at most this many, best first (None: all).

    Returns:
        ``boxes`` [L, 4], ``scores`` [L], ``labels`` [L], plus ``edge_std`` [L, 4] when given, by decreasing score.
    """
    if method not in FUSION_METHODS:
        raise ValueError(f"method must be one of {FUSION_METHODS}, got {method!r}")
    if num_views < 1:
        raise ValueError(f"num_views must be >= 1, got {num_views}")
    has_std = "edge_std" in detections
    if method == "distribution" and not has_std:
        raise ValueError("distribution fusion needs each detection's edge_std (return_distributions=True)")
    boxes, scores, labels = detections["boxes"].float(), detections["scores"].float(), detections["labels"]
    leaders, assign = cluster_detections(boxes, scores, labels, iou_threshold)
    if method == "nms":
        fused = {
            key: value[leaders] for key, value in detections.items() if key in ("boxes", "scores", "labels", "edge_std")
        }
        return _best(fused, max_detections)
    std = detections["edge_std"].float() if has_std else None
    if method == "wbf":
        weight = scores.unsqueeze(1).expand(-1, 4)  # [K, 4]
    else:
        weight = scores.unsqueeze(1) / std.clamp_min(min_std) ** 2  # [K, 4]: score x precision, per edge
    total = _cluster_sum(weight, assign, len(leaders)).clamp_min(torch.finfo(weight.dtype).tiny)  # [L, 4]
    fused_boxes = _cluster_sum(weight * boxes, assign, len(leaders)) / total  # [L, 4]
    count = torch.bincount(assign, minlength=len(leaders)).float()  # [L]
    mean_score = _cluster_sum(scores, assign, len(leaders)) / count.clamp_min(1)
    fused = {
        "boxes": fused_boxes,
        "scores": mean_score * count.clamp(max=num_views) / num_views,
        "labels": labels[leaders],
    }
    if std is not None:
        spread = std**2 + (boxes - fused_boxes[assign]) ** 2  # [K, 4]: each view's variance and disagreement
        fused["edge_std"] = (_cluster_sum(weight * spread, assign, len(leaders)) / total).sqrt()
    return _best(fused, max_detections)


def _cluster_sum(values: Tensor, assign: Tensor, clusters: int) -> Tensor:
    """values (Tensor[K, ...]) summed per cluster: Tensor[L, ...]."""
    return values.new_zeros((clusters, *values.shape[1:])).index_add_(0, assign, values)


def _best(detections: dict[str, Tensor], max_detections: int | None) -> dict[str, Tensor]:
    order = detections["scores"].argsort(descending=True)[:max_detections]
    return {key: value[order] for key, value in detections.items()}


@dataclass(frozen=True)
class TestTimeAugmentation:
    """The views of each image: each scale of the model's input size, each with and without a horizontal flip.

    scales: factors on ``min_size``/``max_size`` (1.0: the model's own size). flip: add flipped views.
    """

    __test__ = False  # not a pytest test class despite the name
    scales: tuple[float, ...] = (1.0,)
    flip: bool = False

    def __post_init__(self) -> None:
        if not self.scales or any(not s > 0 for s in self.scales):
            raise ValueError(f"scales must be positive factors, got {self.scales}")

    @property
    def num_views(self) -> int:
        return len(self.scales) * (2 if self.flip else 1)


@torch.no_grad()
def view_detections(
    models: Sequence[GFLDetector], images: list[Tensor], tta: TestTimeAugmentation = TestTimeAugmentation()
) -> list[dict[str, Tensor]]:
    """Every model's detections on every view of each image, mapped back to the image and pooled.

    Args:
        models: one model, or an ensemble (distribution heads: ``edge_std`` is returned).
        images: Tensor[3, H, W] each, as ``model(images)`` takes them.

    Returns:
        One dict per image: ``boxes`` [K, 4], ``scores`` [K], ``labels`` [K], ``edge_std`` [K, 4] pooled
        over the ``len(models) * tta.num_views`` views, in the image's pixels.
    """
    pooled: list[list[dict[str, Tensor]]] = [[] for _ in images]
    for model in models:
        model.eval()
        for scale in tta.scales:
            size = (max(1, round(model.config.min_size * scale)), max(1, round(model.config.max_size * scale)))
            for flip in (False, True) if tta.flip else (False,):
                views = [image.flip(-1) for image in images] if flip else images
                outputs = model(views, return_distributions=True, input_size=size)
                for slot, image, output in zip(pooled, images, outputs):
                    slot.append(_unflip(output, image.shape[-1]) if flip else output)
    keys = ("boxes", "scores", "labels", "edge_std")
    return [{key: torch.cat([view[key] for view in views]) for key in keys} for views in pooled]


def _unflip(detections: dict[str, Tensor], width: int) -> dict[str, Tensor]:
    """Detections of a horizontally flipped image in the unflipped image: x mirrored, left and right swapped."""
    x0, y0, x1, y1 = detections["boxes"].unbind(-1)
    left, top, right, bottom = detections["edge_std"].unbind(-1)
    return {
        **detections,
        "boxes": torch.stack((width - x1, y0, width - x0, y1), dim=-1),
        "edge_std": torch.stack((right, top, left, bottom), dim=-1),
    }


def fused_dataset_detections(
    models: Sequence[GFLDetector],
    records: DatasetRecords,
    tta: TestTimeAugmentation,
    methods: Sequence[FusionMethod] = FUSION_METHODS,
    iou_threshold: float = 0.55,
    batch_size: int = 4,
    max_images: int | None = None,
    progress: bool = True,
) -> dict[str, tuple[dict[int, dict[str, Tensor]], float]]:
    """Detections of the dataset's images per fusion method, and the seconds each took.

    ``"single"`` is the first model alone on the plain view (its own NMS), the baseline. Every
    method's time includes the views' inference, which they share (run once, timed once).

    Returns:
        method -> (image index -> {"boxes", "scores", "labels"} in the image's pixels, seconds).
    """
    num_views = len(models) * tta.num_views
    max_detections = models[0].config.max_detections
    detections: dict[str, dict[int, dict[str, Tensor]]] = {method: {} for method in ("single", *methods)}
    seconds = dict.fromkeys(detections, 0.0)
    chosen = records.images[:max_images]
    for start in tqdm(range(0, len(chosen), batch_size), desc="fusion", unit="batch", disable=not progress):
        images = [decode_image(record.path) for record in chosen[start : start + batch_size]]
        tick = time.perf_counter()
        with torch.no_grad():
            single = models[0].eval()(images)
        seconds["single"] += time.perf_counter() - tick
        tick = time.perf_counter()
        pooled = view_detections(models, images, tta)
        shared = time.perf_counter() - tick
        for method in methods:
            tick = time.perf_counter()
            fused = [
                fuse_detections(p, method, num_views, iou_threshold, max_detections=max_detections) for p in pooled
            ]
            seconds[method] += shared + time.perf_counter() - tick
            detections[method].update(enumerate(fused, start=start))
        detections["single"].update(enumerate(single, start=start))
    return {method: (detections[method], seconds[method]) for method in detections}
