"""What every assigner of a dense detector reads and returns.

An assigner chooses, for each location of a batch, the ground truth it trains on (or none). It reads one
:class:`AssignerInputs`: the locations (points and strides, from which anchor-based assigners derive
their anchors), each image's valid locations, the padded ground truth (boxes and labels), and, only
when it declares ``needs_predictions = True``, the detached predictions at every location (TOOD's
task-aligned assigner ranks locations by them). It returns an :class:`Assignment`, optionally with a
per-location matching metric, a soft target for the quality score, and locations to ignore.

Shape letters:
    N  images      A  locations over all levels      C  classes (background excluded)
    M  ground-truth boxes per image (padded to the batch maximum)
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import torch
from torch import Tensor

from gfocal.models.grid import LocationGrid

__all__ = [
    "Assigner",
    "AssignerInputs",
    "Assignment",
    "PaddedTargets",
    "Predictions",
    "empty_assignment",
    "needs_predictions",
    "points_inside",
]


class PaddedTargets(NamedTuple):
    """Per-image boxes and labels stacked to the batch's largest count.

    boxes (Tensor[N, M, 4] float32): xyxy in input pixels, zeros in unused slots.
    labels (Tensor[N, M] int64): class indices in [0, C), 0 in unused slots.
    valid (Tensor[N, M] bool): which slots hold a real box.
    """

    boxes: Tensor
    labels: Tensor
    valid: Tensor


class Predictions(NamedTuple):
    """The network's current predictions at every location, detached, float32.

    scores (Tensor[N, A, C] in [0, 1]): class scores after the sigmoid (GFL's joint score).
    boxes (Tensor[N, A, 4]): decoded boxes, xyxy input pixels.
    """

    scores: Tensor
    boxes: Tensor


class AssignerInputs(NamedTuple):
    """One batch as an assigner sees it.

    grid: the A locations (points, strides, level sizes).
    gt: the padded ground truth.
    valid (Tensor[N, A] bool | None): each image's own locations (not another image's padding); None: all.
    predictions: the detached predictions, given only to assigners that declare ``needs_predictions``.
    """

    grid: LocationGrid
    gt: PaddedTargets
    valid: Tensor | None = None
    predictions: Predictions | None = None


class Assignment(NamedTuple):
    """Per-location assignment for a batch.

    gt_index (Tensor[N, A] int64): index of the assigned ground truth, -1 for negatives.
    positive (Tensor[N, A] bool): gt_index >= 0.
    metric (Tensor[N, A] float32 | None): the assigner's matching score with the assigned ground truth
        (TOOD's alignment t), 0 for negatives; None: the assigner has none.
    soft_target (Tensor[N, A] float32 in [0, 1] | None): a target for the positive's quality score
        (TOOD's normalised alignment), 0 for negatives; None: the assigner gives none.
    ignored (Tensor[N, A] bool | None): locations neither positive nor negative, which have no
        classification loss (RetinaNet's IoUs between its two thresholds); None: none.
    """

    gt_index: Tensor
    positive: Tensor
    metric: Tensor | None = None
    soft_target: Tensor | None = None
    ignored: Tensor | None = None


class Assigner(Protocol):
    """Anything mapping :class:`AssignerInputs` to an :class:`Assignment`, e.g. :class:`ATSSAssigner`.

    Two optional class attributes, read with ``False`` as default so a plain function qualifies:
    ``needs_predictions`` (give it :attr:`AssignerInputs.predictions`) and ``gives_soft_targets``
    (its assignments carry ``soft_target``, which ``quality_label="alignment"`` trains towards).
    """

    def __call__(self, inputs: AssignerInputs) -> Assignment: ...


def needs_predictions(assigner: Assigner) -> bool:
    """Whether ``assigner`` reads the network's predictions (then the caller must pass them)."""
    return bool(getattr(assigner, "needs_predictions", False))


def empty_assignment(num_images: int, num_locations: int, device: torch.device) -> Assignment:
    """No positive anywhere: the assignment of a batch without ground truth."""
    gt_index = torch.full((num_images, num_locations), -1, dtype=torch.long, device=device)
    return Assignment(gt_index, gt_index >= 0)


def points_inside(points: Tensor, boxes: Tensor, margin: float = 0.01) -> Tensor:
    """Whether each point lies inside its box by more than ``margin`` pixels on every side.

    Args:
        points (Tensor[..., 2]): (x, y), pixels.
        boxes (Tensor[..., 4]): xyxy, pixels, broadcast against ``points``.

    Returns:
        Tensor[...] bool. The 0.01 margin is mmdetection's (ATSS, TOOD).
    """
    x, y = points[..., 0], points[..., 1]
    edges = torch.stack((x - boxes[..., 0], y - boxes[..., 1], boxes[..., 2] - x, boxes[..., 3] - y), dim=-1)
    return edges.amin(-1) > margin


def claim_candidates(ious: Tensor, candidate_index: Tensor, keep: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Each location's ground truth among those whose kept candidates it is: the one its IoU is highest with
    (the first on ties), as ATSS and TOOD resolve a location several ground truths claim.

    Args:
        ious (Tensor[N, A, M]): IoU of each location (its anchor or predicted box) with each ground truth.
        candidate_index (Tensor[N, K, M]): each ground truth's candidate locations (indices into A).
        keep (Tensor[N, K, M] bool): which candidates the assigner keeps.

    Returns:
        ``(best_iou, best_gt, positive)``, Tensor[N, A] each: the winning IoU (-inf where none claims the
        location), its ground truth's index, and whether any ground truth claims it.
    """
    claimed = torch.full_like(ious, float("-inf"))
    claimed.scatter_(1, candidate_index, torch.where(keep, ious.gather(1, candidate_index), float("-inf")))
    best_iou, best_gt = claimed.max(dim=2)  # [N, A]
    return best_iou, best_gt, best_iou > float("-inf")
