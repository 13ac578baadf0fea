"""The losses of every variant of the head, from its outputs and the batch's ATSS targets.

Shape letters:
    N  images      A  locations      C  classes      M  ground truths per image (padded)
    P  positive locations in the batch      B  outputs per edge (reg_max + 1, or 1 for Dirac)

All of it runs in float32 (autocast disabled), whatever precision the network ran in.

Reference: PAPER.md "Training recipe", Loss weights; mmdetection's GFLHead/ATSSHead normalisation.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import generalized_box_iou_loss, sigmoid_focal_loss

from gfocal.models.config import ModelConfig
from gfocal.models.grid import LocationGrid
from gfocal.models.head import HeadOutputs, joint_score_logits
from gfocal.models.targets import assign_targets
from gfocal.ops import (
    aligned_box_iou,
    box_to_distance,
    centerness,
    decode_boxes,
    distribution_focal_loss,
    quality_focal_loss,
)

__all__ = ["GFLCriterion"]


def _mean_over_ranks(value: Tensor) -> Tensor:
    """Average a scalar over the distributed ranks (the paper averages the normalisers across GPUs)."""
    if dist.is_available() and dist.is_initialized():
        value = value.clone()
        dist.all_reduce(value)
        value /= dist.get_world_size()
    return value


class GFLCriterion:
    """Computes the loss dict of a batch from head outputs and targets, for every variant."""

    def __init__(self, config: ModelConfig) -> None:
        self.config = config

    def __call__(
        self,
        outputs: HeadOutputs,
        grid: LocationGrid,
        targets: list[dict[str, Tensor]],
        valid: Tensor | None = None,
    ) -> tuple[dict[str, Tensor], dict[str, float]]:
        """Returns (losses to be summed, counters for the logger).

        Args:
            outputs: head outputs for N images at the A locations of ``grid``.
            grid: the locations.
            targets: per image ``boxes`` (Tensor[M, 4] xyxy, input pixels) and ``labels`` (Tensor[M] in [0, C)).
            valid (Tensor[N, A] bool | None): the locations of each image, not padding added for other
                images (:func:`gfocal.models.grid.valid_locations`); the rest are never assigned and
                have no loss, as in mmdetection. None: all locations.
        """
        with torch.autocast(outputs.cls_logits.device.type, enabled=False):
            return self._losses(outputs, grid, targets, valid)

    def _losses(self, outputs: HeadOutputs, grid: LocationGrid, targets: list[dict[str, Tensor]], valid: Tensor | None):
        config = self.config
        device = outputs.cls_logits.device
        positives = assign_targets(grid, targets, config.atss_topk, config.anchor_scale, valid).positives
        pos_gt_boxes, pos_labels = positives.box, positives.label  # [P, 4], [P]
        pos_points, pos_strides = positives.point, positives.stride  # [P, 2], [P]
        pos_box_outputs = positives.gather(outputs.box_outputs)  # [P, 4*B]
        pos_boxes = decode_boxes(pos_box_outputs, pos_points, pos_strides, config.box == "dfl")  # [P, 4] pixels
        num_classes = config.num_classes

        num_pos = _mean_over_ranks(torch.tensor(float(len(pos_labels)), device=device)).clamp_min(1.0)
        cls_logits = outputs.cls_logits.reshape(-1, num_classes)  # [N*A, C]
        # Positives are valid by construction; only the classification terms reach invalid locations.
        cls_weight = None if valid is None else valid.reshape(-1, 1).to(cls_logits.dtype)  # [N*A, 1]
        flat_pos = positives.flat_index(outputs.cls_logits.shape[1])  # [P]
        pos_centerness = centerness(pos_points, pos_gt_boxes)  # [P]

        losses: dict[str, Tensor] = {}
        if config.classification == "qfl":
            with torch.no_grad():
                if config.quality_label == "iou":
                    quality = aligned_box_iou(pos_boxes.detach(), pos_gt_boxes)
                else:
                    quality = pos_centerness
            labels = torch.full((cls_logits.shape[0],), num_classes, dtype=torch.long, device=device)
            labels[flat_pos] = pos_labels
            scores = torch.zeros(cls_logits.shape[0], device=device)
            scores[flat_pos] = quality
            score_logits = cls_logits
            if outputs.quality_logits is not None:  # DGQP: the joint score is class x quality
                score_logits = joint_score_logits(cls_logits, outputs.quality_logits.reshape(-1, 1))
            losses["loss_qfl"] = config.loss_cls_weight * quality_focal_loss(
                score_logits,
                (labels, scores),
                beta=config.qfl_beta,
                weight=cls_weight,
                avg_factor=num_pos,
                validate=False,
            )
            box_weight = score_logits.detach()[flat_pos].sigmoid().amax(-1)  # [P]
        else:
            onehot = torch.zeros_like(cls_logits)
            onehot[flat_pos, pos_labels] = 1.0
            focal = sigmoid_focal_loss(
                cls_logits, onehot, alpha=config.focal_alpha, gamma=config.focal_gamma, reduction="none"
            )  # [N*A, C]
            if cls_weight is not None:
                focal = focal * cls_weight
            losses["loss_focal"] = config.loss_cls_weight * focal.sum() / num_pos
            pos_quality_logits = outputs.quality_logits.reshape(-1)[flat_pos]  # [P]
            losses["loss_centerness"] = (
                config.loss_centerness_weight
                * F.binary_cross_entropy_with_logits(pos_quality_logits, pos_centerness, reduction="sum")
                / num_pos
            )
            box_weight = pos_centerness

        weight_sum = _mean_over_ranks(box_weight.sum()).clamp_min(1.0)
        scale = pos_strides.unsqueeze(-1)
        # GIoU on boxes in stride units, as the reference (the loss is scale-invariant anyway).
        giou = generalized_box_iou_loss(pos_boxes / scale, pos_gt_boxes / scale, reduction="none")  # [P]
        losses["loss_bbox"] = config.loss_bbox_weight * (giou * box_weight).sum() / weight_sum
        if config.box == "dfl":
            edge_targets = box_to_distance(pos_points / scale, pos_gt_boxes / scale, max_distance=config.reg_max)
            dfl = distribution_focal_loss(
                pos_box_outputs.reshape(-1, config.reg_max + 1),
                edge_targets.reshape(-1),
                reduction="none",
                validate=False,
            ).reshape(-1, 4)  # [P, 4]
            losses["loss_dfl"] = config.loss_dfl_weight * (dfl.mean(-1) * box_weight).sum() / weight_sum

        stats = {"num_pos": float(len(pos_labels)) / max(len(targets), 1)}
        if config.box == "dfl":
            # Targets clamped to the last bin: a reg_max too short for this data (gfocal analyze range).
            raw = box_to_distance(pos_points / scale, pos_gt_boxes / scale)  # [P, 4] strides, unclamped
            stats["last_bin_fraction"] = float((raw >= config.reg_max - 0.1).float().mean()) if len(raw) else 0.0
        return losses, stats
