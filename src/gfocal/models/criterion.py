"""Training targets and losses for every variant of the head.

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

from gfocal.models.assigner import LocationGrid, atss_assign
from gfocal.models.config import ModelConfig
from gfocal.models.head import HeadOutputs, joint_score_logits
from gfocal.ops import (
    aligned_box_iou,
    box_to_distance,
    distance_to_box,
    distribution_focal_loss,
    integral,
    quality_focal_loss,
)

__all__ = ["GFLCriterion", "centerness", "decode_boxes", "pad_targets"]


def _mean_over_ranks(value: Tensor) -> Tensor:
    """Average a scalar over the distributed ranks (the paper averages the normalisers across GPUs)."""
    if dist.is_available() and dist.is_initialized():
        value = value.clone()
        dist.all_reduce(value)
        value /= dist.get_world_size()
    return value


def pad_targets(targets: list[dict[str, Tensor]], device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """Stack per-image boxes and labels into padded tensors.

    Returns:
        boxes (Tensor[N, M, 4] float32), labels (Tensor[N, M] int64), valid (Tensor[N, M] bool).
    """
    most = max((len(t["boxes"]) for t in targets), default=0)
    boxes = torch.zeros(len(targets), most, 4, device=device)
    labels = torch.zeros(len(targets), most, dtype=torch.long, device=device)
    valid = torch.zeros(len(targets), most, dtype=torch.bool, device=device)
    for i, target in enumerate(targets):
        count = len(target["boxes"])
        boxes[i, :count] = target["boxes"].to(device=device, dtype=torch.float32)
        labels[i, :count] = target["labels"].to(device)
        valid[i, :count] = True
    return boxes, labels, valid


def centerness(points: Tensor, boxes: Tensor) -> Tensor:
    """FCOS centerness ``sqrt(min(l,r)/max(l,r) * min(t,b)/max(t,b))`` of points in boxes.

    Args:
        points (Tensor[P, 2]); boxes (Tensor[P, 4]) xyxy; points inside their boxes.

    Returns:
        Tensor[P] in [0, 1].
    """
    distances = box_to_distance(points, boxes).clamp_min(0)
    horizontal, vertical = distances[:, 0::2], distances[:, 1::2]
    ratio = (horizontal.amin(-1) / horizontal.amax(-1).clamp_min(1e-6)) * (
        vertical.amin(-1) / vertical.amax(-1).clamp_min(1e-6)
    )
    return ratio.sqrt()


def decode_boxes(box_outputs: Tensor, points: Tensor, strides: Tensor, box: str) -> Tensor:
    """Box outputs at some locations to xyxy boxes in pixels.

    Args:
        box_outputs (Tensor[..., 4*B]): distribution logits (``box="dfl"``) or stride-unit distances.
        points (Tensor[..., 2]) and strides (Tensor[...]) of the same locations.

    Returns:
        Tensor[..., 4] xyxy in pixels.
    """
    if box == "dfl":
        distances = integral(box_outputs.unflatten(-1, (4, box_outputs.shape[-1] // 4)))  # [..., 4] in strides
    else:
        distances = box_outputs
    return distance_to_box(points, distances * strides.unsqueeze(-1))


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
                images (:func:`gfocal.models.assigner.valid_locations`); the rest are never assigned and
                have no loss, as in mmdetection. None: all locations.
        """
        with torch.autocast(outputs.cls_logits.device.type, enabled=False):
            return self._losses(outputs, grid, targets, valid)

    def _losses(
        self, outputs: HeadOutputs, grid: LocationGrid, targets: list[dict[str, Tensor]], valid: Tensor | None
    ):
        config = self.config
        device = outputs.cls_logits.device
        gt_boxes, gt_labels, gt_valid = pad_targets(targets, device)
        assignment = atss_assign(grid, gt_boxes, gt_valid, config.atss_topk, config.anchor_scale, valid)
        num_classes = config.num_classes

        image_index, location_index = assignment.positive.nonzero(as_tuple=True)  # [P] each
        matched = assignment.gt_index[image_index, location_index]  # [P]
        pos_gt_boxes = gt_boxes[image_index, matched]  # [P, 4]
        pos_labels = gt_labels[image_index, matched]  # [P]
        pos_points = grid.points[location_index]  # [P, 2]
        pos_strides = grid.strides[location_index]  # [P]
        pos_box_outputs = outputs.box_outputs[image_index, location_index]  # [P, 4*B]
        pos_boxes = decode_boxes(pos_box_outputs, pos_points, pos_strides, config.box)  # [P, 4] pixels

        num_pos = _mean_over_ranks(torch.tensor(float(len(image_index)), device=device)).clamp_min(1.0)
        cls_logits = outputs.cls_logits.reshape(-1, num_classes)  # [N*A, C]
        # Positives are valid by construction; only the classification terms reach invalid locations.
        cls_weight = None if valid is None else valid.reshape(-1, 1).to(cls_logits.dtype)  # [N*A, 1]
        flat_pos = image_index * outputs.cls_logits.shape[1] + location_index  # [P]
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
                score_logits, (labels, scores), beta=config.qfl_beta, weight=cls_weight, avg_factor=num_pos,
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
            losses["loss_centerness"] = config.loss_centerness_weight * F.binary_cross_entropy_with_logits(
                pos_quality_logits, pos_centerness, reduction="sum"
            ) / num_pos
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

        stats = {"num_pos": float(len(image_index)) / max(len(targets), 1)}
        return losses, stats

