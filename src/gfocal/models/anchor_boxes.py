"""Anchor-delta box coding: one square anchor per location, regressed with delta coding.

The paper's ATSS baseline is mmdetection's ``ATSSHead``: each location carries one square anchor of
``anchor_scale`` strides (``octave_base_scale=8``, one scale, one ratio), the box conv predicts its
deltas (dx, dy, dw, dh) normalised by (0.1, 0.1, 0.2, 0.2), and the decoded box is trained with GIoU
weighted by the centerness target. RetinaNet (``gfocal.models.variants``) regresses the same deltas
normalised by (1, 1, 1, 1) with an L1 loss on the deltas themselves (mmdetection 3.3's
``retinanet_r50_fpn``; ``delta_loss="smooth_l1"`` is Detectron's smooth L1, ``"giou"`` GIoU on the decoded
box). The anchors are the ones the ATSS and max-IoU assigners assign with, so assignment needs nothing of
its own.

Shape letters: P positive locations; ... any leading dimensions.

Reference: PAPER.md "Training recipe"; mmdetection 3.3 ``ATSSHead``, ``RetinaHead``, ``DeltaXYWHBBoxCoder``;
Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017 (RetinaNet).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from gfocal.models.box_coding import BoxLossInputs, giou_loss
from gfocal.ops import box_to_delta, delta_to_box, square_anchors

__all__ = ["AnchorDeltaBoxes", "ATSS_DELTA_STDS", "DELTA_LOSSES", "SMOOTH_L1_BETA"]

#: ATSS's normalisation of the deltas (dx, dy, dw, dh); its means are zero.
ATSS_DELTA_STDS = (0.1, 0.1, 0.2, 0.2)
#: The box losses of an anchor-delta head: GIoU on the decoded box, or L1 / smooth L1 on the deltas.
DELTA_LOSSES = ("giou", "l1", "smooth_l1")
#: Detectron's RetinaNet smooth-L1 beta (mmdetection's RetinaNet uses plain L1, beta 0).
SMOOTH_L1_BETA = 0.11


class AnchorDeltaBoxes:
    """Four deltas per location against its square anchor, trained with GIoU on the decoded box (ATSS) or an
    L1 loss on the deltas (RetinaNet).

    Args:
        anchor_scale: the anchor's side in strides (8 in ATSS).
        loss_bbox_weight: the box term's weight (2 with GIoU in ATSS's config, 1 with L1 in RetinaNet's).
        stds: the deltas' normalisation ((1, 1, 1, 1) in RetinaNet).
        loss: one of :data:`DELTA_LOSSES`.
    """

    bins = 1
    has_distributions = False

    def __init__(
        self,
        anchor_scale: float = 8.0,
        loss_bbox_weight: float = 2.0,
        stds: tuple[float, float, float, float] = ATSS_DELTA_STDS,
        loss: str = "giou",
    ) -> None:
        if loss not in DELTA_LOSSES:
            raise ValueError(f"delta_loss must be one of {DELTA_LOSSES}, got {loss!r}")
        if len(stds) != 4 or min(stds) <= 0:
            raise ValueError(f"delta_stds must be 4 positive numbers (dx, dy, dw, dh), got {stds}")
        self.anchor_scale, self.loss_bbox_weight = anchor_scale, loss_bbox_weight
        self.stds, self.loss = tuple(stds), loss

    def init_bias(self, bias: Tensor) -> None:
        nn.init.zeros_(bias)  # every box starts as its anchor, as in mmdetection

    def activate(self, outputs: Tensor) -> Tensor:
        return outputs  # deltas are signed

    def decode(self, outputs: Tensor, points: Tensor, strides: Tensor) -> Tensor:
        return delta_to_box(square_anchors(points, strides, self.anchor_scale), outputs, self.stds)

    def _delta_loss(self, inputs: BoxLossInputs) -> Tensor:
        """L1 or smooth L1 on the deltas, summed over the four of each positive: Tensor[P]."""
        anchors = square_anchors(inputs.points, inputs.strides, self.anchor_scale)  # [P, 4]
        targets = box_to_delta(anchors, inputs.gt_boxes, self.stds)  # [P, 4]
        beta = SMOOTH_L1_BETA if self.loss == "smooth_l1" else 0.0
        return F.smooth_l1_loss(inputs.outputs, targets, reduction="none", beta=beta).sum(-1)

    def distributions(self, outputs: Tensor) -> Tensor:
        raise ValueError("edge distributions need a distribution head (box='dfl'); this model regresses anchor deltas")

    def losses(self, inputs: BoxLossInputs) -> dict[str, Tensor]:
        if self.loss == "giou":
            return {"loss_bbox": giou_loss(inputs, self.loss_bbox_weight)}
        return {"loss_bbox": inputs.weighted(self.loss_bbox_weight, self._delta_loss(inputs))}

    def training_stats(self, inputs: BoxLossInputs) -> dict[str, float]:
        return {}  # no bins, so no range to run out of
