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

:class:`FusedDetector` wraps one model (test-time augmentation) or several (an ensemble) and answers
``model(images)`` like the detector itself, so ``gfocal predict --tta`` and ``gfocal eval --tta`` run it
unchanged (as :class:`gfocal.tiling.TiledDetector` does for tiles). Scoring the methods against each other
on a dataset is :mod:`gfocal.analysis.fusion`.

Shape letters: K pooled detections, L clusters, V views.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn
from torchvision.ops import batched_nms, box_iou

__all__ = [
    "FUSION_METHODS",
    "FusedDetector",
    "FusionMethod",
    "TestTimeAugmentation",
    "cluster_detections",
    "fuse_detections",
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
    models: Sequence[nn.Module],
    images: list[Tensor],
    tta: TestTimeAugmentation = TestTimeAugmentation(),
    with_distributions: bool = True,
) -> list[dict[str, Tensor]]:
    """Every model's detections on every view of each image, mapped back to the image and pooled.

    Args:
        models: one model, or an ensemble (:class:`~gfocal.models.GFLDetector` s: each view is a call
            ``model(images, return_distributions=..., input_size=...)`` at its scale of ``config.min_size``
            and ``config.max_size``).
        images: Tensor[3, H, W] each, as ``model(images)`` takes them.
        with_distributions: also pool ``edge_std`` (needs distribution heads).

    Returns:
        One dict per image: ``boxes`` [K, 4], ``scores`` [K], ``labels`` [K] (and ``edge_std`` [K, 4]) pooled
        over the ``len(models) * tta.num_views`` views, in the image's pixels.
    """
    pooled: list[list[dict[str, Tensor]]] = [[] for _ in images]
    for model in models:
        model.eval()
        for scale in tta.scales:
            size = (max(1, round(model.config.min_size * scale)), max(1, round(model.config.max_size * scale)))
            for flip in (False, True) if tta.flip else (False,):
                views = [image.flip(-1) for image in images] if flip else images
                outputs = model(views, return_distributions=with_distributions, input_size=size)
                for slot, image, output in zip(pooled, images, outputs):
                    slot.append(_unflip(output, image.shape[-1]) if flip else output)
    keys = ("boxes", "scores", "labels", "edge_std") if with_distributions else ("boxes", "scores", "labels")
    return [{key: torch.cat([view[key] for view in views]) for key in keys} for views in pooled]


def _unflip(detections: dict[str, Tensor], width: int) -> dict[str, Tensor]:
    """Detections of a horizontally flipped image in the unflipped image: x mirrored, left and right swapped.

    Only the fields :func:`view_detections` pools are returned: a flipped view's ``box_distributions`` would
    need their left and right edges swapped too, and no fusion reads them.
    """
    x0, y0, x1, y1 = detections["boxes"].unbind(-1)
    unflipped = {
        "boxes": torch.stack((width - x1, y0, width - x0, y1), dim=-1),
        "scores": detections["scores"],
        "labels": detections["labels"],
    }
    if "edge_std" in detections:
        left, top, right, bottom = detections["edge_std"].unbind(-1)
        unflipped["edge_std"] = torch.stack((right, top, left, bottom), dim=-1)
    return unflipped


class FusedDetector(nn.Module):
    """Several views (test-time augmentation) of one or more detectors, fused into one set of detections.

    Answers ``model(images, return_distributions=...)`` like the detector: one ``{"boxes", "scores",
    "labels"}`` dict per image in its pixels, sorted by score, at most ``max_detections``; with
    ``return_distributions`` also the fused ``edge_std`` [G, 4] (pixels, left, top, right, bottom; for
    ``"wbf"`` and ``"distribution"`` the spread of the weighted mixture, see :func:`fuse_detections`). It
    returns no ``box_distributions``: a fused box is no one distribution's expectation.

    Args:
        models: detectors in eval mode (:func:`view_detections`); several make an ensemble.
        tta: the views of each image.
        method: one of :data:`FUSION_METHODS`; ``"distribution"`` needs distribution heads.
        iou_threshold: least IoU with a cluster's leader to join it. Default: the first model's NMS threshold,
            so that one view fuses to itself (its detections already passed NMS at that threshold).
        max_detections: kept per image; default: the first model's ``config.max_detections``.
    """

    def __init__(
        self,
        models: Sequence[nn.Module],
        tta: TestTimeAugmentation = TestTimeAugmentation(),
        method: FusionMethod = "distribution",
        iou_threshold: float | None = None,
        max_detections: int | None = None,
    ) -> None:
        super().__init__()
        if not models:
            raise ValueError("FusedDetector needs at least one model")
        if method not in FUSION_METHODS:
            raise ValueError(f"method must be one of {FUSION_METHODS}, got {method!r}")
        self.has_distributions = all(model.head.box_coding.has_distributions for model in models)
        if method == "distribution" and not self.has_distributions:
            raise ValueError("distribution fusion needs models with edge distributions; use method 'wbf' or 'nms'")
        self.models = nn.ModuleList(models)
        self.tta, self.method = tta, method
        config = models[0].config
        self.iou_threshold = config.nms_iou_threshold if iou_threshold is None else iou_threshold
        self.max_detections = config.max_detections if max_detections is None else max_detections
        self.train(models[0].training)  # a wrapper of models in eval mode is ready to predict

    @property
    def num_views(self) -> int:
        """Views fused per image: models x scales x flips."""
        return len(self.models) * self.tta.num_views

    def forward(self, images: list[Tensor], return_distributions: bool = False) -> list[dict[str, Tensor]]:
        """Fused detections of each image (Tensor[3, H, W], uint8 or float in [0, 1]), in its pixels.

        Returns:
            One dict per image: ``boxes`` [G, 4] xyxy, ``scores`` [G], ``labels`` [G] int64 in 0..C-1, and
            with ``return_distributions`` ``edge_std`` [G, 4].
        """
        if self.training:
            raise RuntimeError("FusedDetector predicts; train the detectors themselves")
        if return_distributions and not self.has_distributions:
            raise ValueError("return_distributions needs distribution heads (box='dfl'); a model regresses Dirac boxes")
        # Pool the edge std only where it is used: the distribution method weighs by it, the caller asked.
        with_std = self.method == "distribution" or return_distributions
        pooled = view_detections(self.models, images, self.tta, with_std)
        fused = [
            fuse_detections(p, self.method, self.num_views, self.iou_threshold, max_detections=self.max_detections)
            for p in pooled
        ]
        if not return_distributions:
            fused = [{key: value for key, value in f.items() if key != "edge_std"} for f in fused]
        return fused
