"""Training targets: a batch's ground truth turned into positives by the model's assigner (ATSS by default),
for the loss and for every analysis tool that needs to know which locations train on which box.

Shape letters:
    N  images      A  locations over all levels      M  ground truths per image (padded)
    P  positive locations in the batch
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from gfocal.models.assigner import (
    Assigner,
    AssignerInputs,
    Assignment,
    PaddedTargets,
    Predictions,
    needs_predictions,
)
from gfocal.models.box_coding import BoxCoding
from gfocal.models.grid import LocationGrid

__all__ = [
    "PaddedTargets",
    "Positives",
    "BatchTargets",
    "pad_targets",
    "assign_targets",
    "assignment_predictions",
]


class Positives(NamedTuple):
    """The positive locations of a batch, one row each, in (image, location) order.

    image (Tensor[P] int64): image index in the batch.
    location (Tensor[P] int64): location index into the grid (A of them).
    gt_index (Tensor[P] int64): index of the assigned box among that image's targets.
    box (Tensor[P, 4]): the assigned box, xyxy input pixels.
    label (Tensor[P] int64): its class.
    point (Tensor[P, 2]): the location's point (x, y), pixels.
    stride (Tensor[P]): the location's stride, pixels.
    metric (Tensor[P] | None): the assigner's matching score (TOOD's alignment), if it has one.
    soft_target (Tensor[P] in [0, 1] | None): the assigner's target for the quality score, if it gives one.
    """

    image: Tensor
    location: Tensor
    gt_index: Tensor
    box: Tensor
    label: Tensor
    point: Tensor
    stride: Tensor
    metric: Tensor | None = None
    soft_target: Tensor | None = None

    def flat_index(self, num_locations: int) -> Tensor:
        """Tensor[P]: the rows of these positives in an ``[N * A, ...]`` flattening of per-location outputs."""
        return self.image * num_locations + self.location

    def gather(self, per_location: Tensor) -> Tensor:
        """``per_location`` (Tensor[N, A, ...]) at the positives: Tensor[P, ...]."""
        return per_location[self.image, self.location]


class BatchTargets(NamedTuple):
    """What :func:`assign_targets` gives: the padded ground truth, the per-location assignment, the positives."""

    padded: PaddedTargets
    assignment: Assignment
    positives: Positives


def pad_targets(targets: list[dict[str, Tensor]], device: torch.device) -> PaddedTargets:
    """Stack per-image ``boxes`` (Tensor[M_i, 4]) and ``labels`` (Tensor[M_i]) into padded tensors on ``device``."""
    most = max((len(t["boxes"]) for t in targets), default=0)
    boxes = torch.zeros(len(targets), most, 4, device=device)
    labels = torch.zeros(len(targets), most, dtype=torch.long, device=device)
    valid = torch.zeros(len(targets), most, dtype=torch.bool, device=device)
    for i, target in enumerate(targets):
        count = len(target["boxes"])
        boxes[i, :count] = target["boxes"].to(device=device, dtype=torch.float32)
        labels[i, :count] = target["labels"].to(device)
        valid[i, :count] = True
    return PaddedTargets(boxes, labels, valid)


def assignment_predictions(
    scores: Tensor, box_outputs: Tensor, grid: LocationGrid, box_coding: BoxCoding
) -> Predictions:
    """What an assigner that ``needs_predictions`` reads: detached float32 scores and decoded boxes.

    Args:
        scores (Tensor[N, A, C] in [0, 1]): class scores after the sigmoid (the joint score for GFL).
        box_outputs (Tensor[N, A, 4*B]): the head's box outputs at the A locations of ``grid``.
        box_coding: how to decode them.
    """
    with torch.no_grad():
        boxes = box_coding.decode(box_outputs.detach().float(), grid.points, grid.strides)  # [N, A, 4]
        return Predictions(scores.detach().float(), boxes)


def assign_targets(
    grid: LocationGrid,
    targets: list[dict[str, Tensor]],
    assigner: Assigner,
    valid: Tensor | None = None,
    predictions: Predictions | None = None,
) -> BatchTargets:
    """The positives of a batch, as ``assigner`` picks them.

    Args:
        grid: the batch's A locations.
        targets: per image ``boxes`` (Tensor[M, 4] xyxy, input pixels) and ``labels`` (Tensor[M] in [0, C)).
        assigner: e.g. ATSS with its settings (:func:`gfocal.models.components.build_assigner`).
        valid (Tensor[N, A] bool | None): the locations of each image, not padding added for other
            images (:func:`gfocal.models.grid.valid_locations`); the rest are never assigned. None: all.
        predictions: the network's detached predictions (:func:`assignment_predictions`), required by
            an assigner that ``needs_predictions`` and not shown to any other.
    """
    if needs_predictions(assigner) and predictions is None:
        raise ValueError(
            f"the assigner {assigner!r} ranks locations by the network's predictions: pass predictions= "
            "(gfocal.models.targets.assignment_predictions), e.g. through GFLDetector.assign(..., scored=...)"
        )
    padded = pad_targets(targets, grid.points.device)
    shown = predictions if needs_predictions(assigner) else None
    assignment = assigner(AssignerInputs(grid, padded, valid, shown))
    image, location = assignment.positive.nonzero(as_tuple=True)  # [P] each
    gt_index = assignment.gt_index[image, location]  # [P]
    positives = Positives(
        image=image,
        location=location,
        gt_index=gt_index,
        box=padded.boxes[image, gt_index],
        label=padded.labels[image, gt_index],
        point=grid.points[location],
        stride=grid.strides[location],
        metric=None if assignment.metric is None else assignment.metric[image, location],
        soft_target=None if assignment.soft_target is None else assignment.soft_target[image, location],
    )
    return BatchTargets(padded, assignment, positives)
