"""Evaluate the learned edge distributions at the annotated boxes themselves.

Every annotation gets distributions, whether or not a detection matches it:
the head runs on the image, the real ATSS assigner picks the locations that
training would assign to the annotation, and the one with the highest score
for the annotated class is the annotation's *probe location*. Its four edge
distributions are what the model believes about that object's edges. An
annotation that ATSS assigns no location (rare: a box too small or too thin
for every level) falls back to the best-scoring location whose point lies
inside the box, and one with no location inside (a box of a few pixels
between grid points) to the location nearest its centre.

Shape letters:
    N  images      A  locations over all levels      C  classes
    M  annotations per image (padded to the batch maximum)      B  bins per edge
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from gfocal.models import GFLDetector
from gfocal.models.detector import ScoredOutputs
from gfocal.models.grid import valid_locations
from gfocal.models.transform import ImageBatch
from gfocal.ops import box_to_distance

__all__ = ["AnnotationProbe", "PROBE_KINDS", "probe_annotations", "probe_and_detect"]

PROBE_KINDS = ("atss", "inside", "nearest")


class AnnotationProbe(NamedTuple):
    """The model's distributions at one image's M annotations, in original-image pixels.

    probs (Tensor[M, 4, B]): edge distributions at the probe location (edges left, top, right, bottom).
    boxes (Tensor[M, 4]): the box the model decodes there, xyxy pixels.
    bin_size (Tensor[M, 4]): pixels per bin of each edge.
    annotated_bins (Tensor[M, 4]): the annotated edges' distances from the probe point, in bins
        (may fall outside [0, R] for boxes larger than the level's range).
    points (Tensor[M, 2]): the probe locations' points (x, y), pixels.
    scores (Tensor[M]): score of the annotated class at the probe location, in [0, 1].
    levels (Tensor[M] int64): FPN level index of the probe location (0 = the finest level).
    kinds (Tensor[M] int64): how it was chosen: 0 assigned by ATSS, 1 inside the box, 2 nearest the centre
        (:data:`PROBE_KINDS`).
    """

    probs: Tensor
    boxes: Tensor
    bin_size: Tensor
    annotated_bins: Tensor
    points: Tensor
    scores: Tensor
    levels: Tensor
    kinds: Tensor


def probe_annotations(
    model: GFLDetector, images: list[Tensor], targets: list[dict[str, Tensor]]
) -> list[AnnotationProbe]:
    """Run the head once on a batch and read the distributions at every annotation's probe location.

    Args:
        model: a detector with a distribution head (``box="dfl"``); run in eval mode.
        images: list of Tensor[3, H, W] (uint8 or float in [0, 1]), original sizes.
        targets: per image ``boxes`` (Tensor[M, 4] xyxy original pixels) and ``labels`` (Tensor[M] int64).

    Returns:
        one :class:`AnnotationProbe` per image, M rows each in the order of its targets.
    """
    return probe_and_detect(model, images, targets, detect=False)[0]


@torch.no_grad()
def probe_and_detect(
    model: GFLDetector, images: list[Tensor], targets: list[dict[str, Tensor]], detect: bool = True
) -> tuple[list[AnnotationProbe], list[dict[str, Tensor]]]:
    """:func:`probe_annotations` and, from the same head outputs, the detections with distributions.

    Returns:
        (probes, detections): detections as ``model(images, return_distributions=True)`` gives
        them in eval mode (empty list when ``detect`` is False).
    """
    if not model.head.box_coding.has_distributions:
        raise ValueError("ambiguity analysis needs a distribution head (box='dfl'); this model regresses Dirac boxes")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    targets = [{"boxes": t["boxes"].to(device).float(), "labels": t["labels"].to(device)} for t in targets]
    batch, scaled = model.transform(images, targets)
    scored = model.scored_outputs(batch.tensors)
    model.train(was_training)
    detections = model.detect(batch, scored, return_distributions=True) if detect else []
    return _probes(model, batch, scored, scaled), detections


def _probes(
    model: GFLDetector, batch: ImageBatch, scored: ScoredOutputs, targets: list[dict[str, Tensor]]
) -> list[AnnotationProbe]:
    device = scored.scores.device
    grid, box_coding = scored.grid, model.head.box_coding
    # As in training, padding added for other images of the batch holds no probe.
    valid = valid_locations(grid, batch.image_sizes, model.config.size_divisible)  # [N, A]
    assigned_targets = model.assign(grid, targets, valid, scored)
    gt_boxes, gt_labels, gt_valid = assigned_targets.padded  # [N, M, 4], [N, M], [N, M]
    assignment = assigned_targets.assignment
    num_images, num_gt = gt_valid.shape
    num_locations = grid.points.shape[0]
    if num_gt == 0:
        return [_empty(box_coding.bins, device) for _ in range(num_images)]
    assigned = F.one_hot(assignment.gt_index.clamp_min(0), num_gt).bool()  # [N, A, M]
    assigned &= assignment.positive.unsqueeze(-1)
    inside = box_to_distance(grid.points[None, :, None, :], gt_boxes[:, None]).amin(-1) > 0  # [N, A, M]
    inside &= valid.unsqueeze(-1)
    centres = (gt_boxes[..., :2] + gt_boxes[..., 2:]) / 2  # [N, M, 2]
    nearest = (grid.points[None, :, None, :] - centres[:, None]).norm(dim=-1)  # [N, A, M]
    nearest = nearest.masked_fill(~valid.unsqueeze(-1), float("inf"))
    nearest = nearest == nearest.amin(1, keepdim=True)
    kinds = torch.where(assigned.any(1), 0, torch.where(inside.any(1), 1, 2))  # [N, M]
    candidates = torch.stack((assigned, inside, nearest), dim=-1).gather(
        -1, kinds[:, None, :, None].expand(-1, num_locations, -1, 1)
    )
    candidates = candidates.squeeze(-1)  # [N, A, M]
    class_scores = scored.scores.gather(2, gt_labels.unsqueeze(1).expand(-1, num_locations, -1))  # [N, A, M]
    best_score, best_location = torch.where(candidates, class_scores, -1.0).max(dim=1)  # [N, M]

    width = scored.box_outputs.shape[-1]
    box_outputs = scored.box_outputs.gather(1, best_location.unsqueeze(-1).expand(-1, -1, width))  # [N, M, 4*B]
    points, strides = grid.points[best_location], grid.strides[best_location]  # [N, M, 2], [N, M]
    boxes = box_coding.decode(box_outputs, points, strides)  # [N, M, 4] network pixels
    annotated_bins = box_to_distance(points, gt_boxes) / strides.unsqueeze(-1)  # [N, M, 4]
    levels = (strides.unsqueeze(-1) == strides.new_tensor(grid.level_strides)).float().argmax(-1)  # [N, M]
    probs = box_coding.distributions(box_outputs)  # [N, M, 4, B]

    probes = []
    for i, target in enumerate(targets):
        count = len(target["boxes"])  # targets are in network pixels; scales map them back
        scale_x, scale_y = batch.scales[i]
        per_edge = boxes.new_tensor([scale_x, scale_y, scale_x, scale_y])
        probes.append(
            AnnotationProbe(
                probs=probs[i, :count],
                boxes=boxes[i, :count] / per_edge,
                bin_size=strides[i, :count, None] / per_edge,
                annotated_bins=annotated_bins[i, :count],
                points=points[i, :count] / per_edge[:2],
                scores=best_score[i, :count],
                levels=levels[i, :count],
                kinds=kinds[i, :count],
            )
        )
    return probes


def _empty(bins: int, device: torch.device) -> AnnotationProbe:
    zeros = torch.zeros(0, 4, device=device)
    return AnnotationProbe(
        torch.zeros(0, 4, bins, device=device), zeros, zeros, zeros, torch.zeros(0, 2, device=device),
        torch.zeros(0, device=device), torch.zeros(0, dtype=torch.long, device=device),
        torch.zeros(0, dtype=torch.long, device=device),
    )  # fmt: skip
