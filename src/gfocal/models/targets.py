"""Training targets: a batch's ground truth turned into positives (ATSS's by default), for the loss and
for every analysis tool that needs to know which locations train on which box.

Shape letters:
    N  images      A  locations over all levels      M  ground truths per image (padded)
    P  positive locations in the batch
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from gfocal.models.assigner import Assigner, Assignment
from gfocal.models.grid import LocationGrid

__all__ = ["PaddedTargets", "Positives", "BatchTargets", "pad_targets", "assign_targets"]


class PaddedTargets(NamedTuple):
    """Per-image boxes and labels stacked to the batch's largest count.

    boxes (Tensor[N, M, 4] float32): xyxy in input pixels, zeros in unused slots.
    labels (Tensor[N, M] int64): class indices, 0 in unused slots.
    valid (Tensor[N, M] bool): which slots hold a real box.
    """

    boxes: Tensor
    labels: Tensor
    valid: Tensor


class Positives(NamedTuple):
    """The positive locations of a batch, one row each, in (image, location) order.

    image (Tensor[P] int64): image index in the batch.
    location (Tensor[P] int64): location index into the grid (A of them).
    gt_index (Tensor[P] int64): index of the assigned box among that image's targets.
    box (Tensor[P, 4]): the assigned box, xyxy input pixels.
    label (Tensor[P] int64): its class.
    point (Tensor[P, 2]): the location's point (x, y), pixels.
    stride (Tensor[P]): the location's stride, pixels.
    """

    image: Tensor
    location: Tensor
    gt_index: Tensor
    box: Tensor
    label: Tensor
    point: Tensor
    stride: Tensor

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


def assign_targets(
    grid: LocationGrid, targets: list[dict[str, Tensor]], assigner: Assigner, valid: Tensor | None = None
) -> BatchTargets:
    """The positives of a batch, as ``assigner`` picks them.

    Args:
        grid: the batch's A locations.
        targets: per image ``boxes`` (Tensor[M, 4] xyxy, input pixels) and ``labels`` (Tensor[M] in [0, C)).
        assigner: e.g. ATSS with its settings bound (:func:`gfocal.models.components.build_assigner`).
        valid (Tensor[N, A] bool | None): the locations of each image, not padding added for other
            images (:func:`gfocal.models.grid.valid_locations`); the rest are never assigned. None: all.
    """
    padded = pad_targets(targets, grid.points.device)
    assignment = assigner(grid, padded.boxes, padded.valid, valid=valid)
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
    )
    return BatchTargets(padded, assignment, positives)
