"""How the head represents a box: a general distribution per edge (GFL) or one distance per edge (Dirac).

A box coding owns everything that depends on that choice: the number of outputs per edge, the
box conv's initial bias, decoding outputs into boxes, the edge distributions analysis reads, and
the box losses. The head, the criterion, post-processing, export and analysis ask it instead of
checking the config.

Shape letters:
    P  positive locations      B  outputs per edge: R + 1 bins for a distribution (R = reg_max), 1 for Dirac
    ...  any leading dimensions

Reference: PAPER.md "Distribution Focal Loss", "Training recipe", Loss weights.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

from torch import Tensor, nn
from torchvision.ops import generalized_box_iou_loss

from gfocal.ops import box_to_distance, decode_boxes, distribution_focal_loss

__all__ = ["BoxCoding", "BoxLossInputs", "DistributionBoxes", "DiracBoxes", "giou_loss"]


class BoxLossInputs(NamedTuple):
    """The positives' box outputs and targets, as every box loss reads them.

    outputs (Tensor[P, 4*B]): the head's box outputs at the positives.
    boxes (Tensor[P, 4]): those outputs decoded, xyxy input pixels.
    gt_boxes (Tensor[P, 4]): the assigned ground truths, xyxy input pixels.
    points (Tensor[P, 2]): the positives' points (x, y), pixels.
    strides (Tensor[P]): their strides, pixels.
    weight (Tensor[P]): each positive's weight (its predicted quality, or centerness), no gradient.
    weight_sum (Tensor[]): the normaliser of the weighted sums (averaged over ranks, at least 1).
    """

    outputs: Tensor
    boxes: Tensor
    gt_boxes: Tensor
    points: Tensor
    strides: Tensor
    weight: Tensor
    weight_sum: Tensor

    def weighted(self, loss_weight: float, per_positive: Tensor) -> Tensor:
        """``loss_weight * sum(weight * loss) / weight_sum`` for a Tensor[P] of per-positive losses."""
        return loss_weight * (per_positive * self.weight).sum() / self.weight_sum


class BoxCoding(Protocol):
    """A box representation: what the head's box conv predicts per edge and how it is read and trained."""

    #: Outputs per edge (B); the box conv has 4 * bins output channels.
    bins: int
    #: Whether :meth:`distributions` exists (GFL's analysis tools and ``return_distributions`` need it).
    has_distributions: bool

    def init_bias(self, bias: Tensor) -> None:
        """Set the box conv's initial bias (Tensor[4*B]) in place."""

    def activate(self, outputs: Tensor) -> Tensor:
        """The box conv's scaled output (Tensor[N, 4*B, H, W]) as the head returns it."""

    def decode(self, outputs: Tensor, points: Tensor, strides: Tensor) -> Tensor:
        """outputs (Tensor[..., 4*B]) at locations with points (Tensor[..., 2]) and strides (Tensor[...])
        to xyxy boxes (Tensor[..., 4]) in pixels."""

    def distributions(self, outputs: Tensor) -> Tensor:
        """outputs (Tensor[..., 4*B]) as probabilities over the bins of each edge, Tensor[..., 4, B]."""

    def losses(self, inputs: BoxLossInputs) -> dict[str, Tensor]:
        """The weighted box loss terms (to be summed) of a batch's positives."""

    def training_stats(self, inputs: BoxLossInputs) -> dict[str, float]:
        """Counters for the training log (not losses), e.g. how often the representation's range is short."""


def giou_loss(inputs: BoxLossInputs, loss_weight: float) -> Tensor:
    """Weighted GIoU loss on boxes in stride units, as the reference (the loss is scale-invariant anyway)."""
    scale = inputs.strides.unsqueeze(-1)
    giou = generalized_box_iou_loss(inputs.boxes / scale, inputs.gt_boxes / scale, reduction="none")  # [P]
    return inputs.weighted(loss_weight, giou)


class DistributionBoxes:
    """GFL's general distribution: ``reg_max + 1`` bin logits per edge, read by the Integral, trained
    with GIoU on the decoded box and DFL on the distribution."""

    has_distributions = True

    def __init__(self, reg_max: int, loss_bbox_weight: float = 2.0, loss_dfl_weight: float = 0.25) -> None:
        if reg_max < 1:
            raise ValueError(f"reg_max must be >= 1 for a distribution (reg_max + 1 bins per edge), got {reg_max}")
        self.reg_max, self.bins = reg_max, reg_max + 1
        self.loss_bbox_weight, self.loss_dfl_weight = loss_bbox_weight, loss_dfl_weight

    def init_bias(self, bias: Tensor) -> None:
        nn.init.zeros_(bias)  # uniform distributions: every edge starts at reg_max / 2

    def activate(self, outputs: Tensor) -> Tensor:
        return outputs  # logits

    def decode(self, outputs: Tensor, points: Tensor, strides: Tensor) -> Tensor:
        return decode_boxes(outputs, points, strides, distribution=True)

    def distributions(self, outputs: Tensor) -> Tensor:
        return outputs.unflatten(-1, (4, self.bins)).softmax(-1)

    def losses(self, inputs: BoxLossInputs) -> dict[str, Tensor]:
        scale = inputs.strides.unsqueeze(-1)
        edge_targets = box_to_distance(inputs.points / scale, inputs.gt_boxes / scale, max_distance=self.reg_max)
        dfl = distribution_focal_loss(
            inputs.outputs.reshape(-1, self.bins), edge_targets.reshape(-1), reduction="none", validate=False
        ).reshape(-1, 4)  # [P, 4]
        return {
            "loss_bbox": giou_loss(inputs, self.loss_bbox_weight),
            "loss_dfl": inputs.weighted(self.loss_dfl_weight, dfl.mean(-1)),
        }

    def training_stats(self, inputs: BoxLossInputs) -> dict[str, float]:
        """``last_bin_fraction``: share of the positives' edge targets that training clamps to the last bin
        (``reg_max - 0.1`` strides), a reg_max too short for the data (``gfocal analyze range``)."""
        if len(inputs.gt_boxes) == 0:
            return {"last_bin_fraction": 0.0}
        scale = inputs.strides.unsqueeze(-1)
        distances = box_to_distance(inputs.points / scale, inputs.gt_boxes / scale)  # [P, 4] strides, unclamped
        return {"last_bin_fraction": float((distances >= self.reg_max - 0.1).float().mean())}


class DiracBoxes:
    """One distance per edge in stride units (a Dirac delta), trained with GIoU only."""

    bins = 1
    has_distributions = False

    def __init__(self, initial_distance: float = 4.0, loss_bbox_weight: float = 2.0) -> None:
        self.initial_distance, self.loss_bbox_weight = initial_distance, loss_bbox_weight

    def init_bias(self, bias: Tensor) -> None:
        # Start from the ATSS anchor (anchor_scale strides square, so half of it per edge), as an
        # anchor-based baseline does. From zero bias the boxes start near zero size, where GIoU has
        # almost no gradient (a point inside its target scores GIoU 0 however it grows by a little): in
        # the ablation one of three QFL-only runs never left them, and the others learned slowly.
        nn.init.constant_(bias, self.initial_distance)

    def activate(self, outputs: Tensor) -> Tensor:
        return outputs.relu()  # distances are never negative

    def decode(self, outputs: Tensor, points: Tensor, strides: Tensor) -> Tensor:
        return decode_boxes(outputs, points, strides, distribution=False)

    def distributions(self, outputs: Tensor) -> Tensor:
        raise ValueError("edge distributions need a distribution head (box='dfl'); this model regresses Dirac boxes")

    def losses(self, inputs: BoxLossInputs) -> dict[str, Tensor]:
        return {"loss_bbox": giou_loss(inputs, self.loss_bbox_weight)}

    def training_stats(self, inputs: BoxLossInputs) -> dict[str, float]:
        return {}  # no bins, so no range to run out of
