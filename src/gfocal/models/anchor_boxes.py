"""The paper's ATSS baseline box coding: one square anchor per location, regressed with delta coding.

mmdetection's ``ATSSHead`` (the baseline of GFL's ablation): each location carries one square anchor
of ``anchor_scale`` strides (``octave_base_scale=8``, one scale, one ratio), the box conv predicts
its deltas (dx, dy, dw, dh) normalised by (0.1, 0.1, 0.2, 0.2), and the decoded box is trained with
GIoU weighted by the centerness target. The anchors are the ones ATSS assigns with
(:func:`gfocal.models.assigner.atss_assign`), so assignment needs nothing of its own.

Shape letters: P positive locations; ... any leading dimensions.

Reference: PAPER.md "Training recipe"; mmdetection 3.3 ``ATSSHead``, ``DeltaXYWHBBoxCoder``.
"""

from __future__ import annotations

from torch import Tensor, nn

from gfocal.models.box_coding import BoxLossInputs, giou_loss
from gfocal.ops import delta_to_box, square_anchors

__all__ = ["AnchorDeltaBoxes", "ATSS_DELTA_STDS"]

#: ATSS's normalisation of the deltas (dx, dy, dw, dh); its means are zero.
ATSS_DELTA_STDS = (0.1, 0.1, 0.2, 0.2)


class AnchorDeltaBoxes:
    """Four deltas per location against its square anchor, trained with GIoU on the decoded box.

    Args:
        anchor_scale: the anchor's side in strides (8 in ATSS).
        loss_bbox_weight: the GIoU term's weight (2 in ATSS's config).
        stds: the deltas' normalisation.
    """

    bins = 1
    has_distributions = False

    def __init__(
        self,
        anchor_scale: float = 8.0,
        loss_bbox_weight: float = 2.0,
        stds: tuple[float, float, float, float] = ATSS_DELTA_STDS,
    ) -> None:
        self.anchor_scale, self.loss_bbox_weight, self.stds = anchor_scale, loss_bbox_weight, stds

    def init_bias(self, bias: Tensor) -> None:
        nn.init.zeros_(bias)  # every box starts as its anchor, as in mmdetection

    def activate(self, outputs: Tensor) -> Tensor:
        return outputs  # deltas are signed

    def decode(self, outputs: Tensor, points: Tensor, strides: Tensor) -> Tensor:
        return delta_to_box(square_anchors(points, strides, self.anchor_scale), outputs, self.stds)

    def distributions(self, outputs: Tensor) -> Tensor:
        raise ValueError("edge distributions need a distribution head (box='dfl'); this model regresses anchor deltas")

    def losses(self, inputs: BoxLossInputs) -> dict[str, Tensor]:
        return {"loss_bbox": giou_loss(inputs, self.loss_bbox_weight)}

    def training_stats(self, inputs: BoxLossInputs) -> dict[str, float]:
        return {}  # no bins, so no range to run out of
