"""Box geometry the method needs and torchvision lacks: IoU of paired boxes, batched IoU of all pairs,
FCOS centerness.

Shape letters: P pairs of boxes; A and M boxes of two sets.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gfocal.ops.distribution import box_to_distance

__all__ = ["aligned_box_iou", "batched_box_iou", "centerness"]


def aligned_box_iou(boxes: Tensor, other: Tensor, eps: float = 1e-6) -> Tensor:
    """IoU of ``boxes[i]`` with ``other[i]`` (torchvision's ``box_iou`` gives all pairs instead).

    Args:
        boxes (Tensor[P, 4]), other (Tensor[P, 4]): xyxy boxes; degenerate boxes have area 0.

    Returns:
        Tensor[P] in [0, 1]: the QFL quality target of GFL when ``boxes`` are the predictions.
    """
    top_left = boxes[:, :2].maximum(other[:, :2])
    bottom_right = boxes[:, 2:].minimum(other[:, 2:])
    intersection = (bottom_right - top_left).clamp_min(0).prod(-1)
    area = (boxes[:, 2:] - boxes[:, :2]).clamp_min(0).prod(-1)
    area_other = (other[:, 2:] - other[:, :2]).clamp_min(0).prod(-1)
    return intersection / (area + area_other - intersection).clamp_min(eps)


def batched_box_iou(boxes: Tensor, other: Tensor, eps: float = 1e-6) -> Tensor:
    """IoU of every box of ``boxes`` with every box of ``other``, over leading batch dimensions
    (torchvision's ``box_iou`` takes one set of each; this is mmdetection's ``bbox_overlaps``).

    Args:
        boxes (Tensor[..., A, 4]), other (Tensor[..., M, 4]): xyxy boxes.
        eps: floor of the union, so empty boxes give 0, not NaN.

    Returns:
        Tensor[..., A, M] in [0, 1].
    """
    area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])  # [..., A]
    area_other = (other[..., 2] - other[..., 0]) * (other[..., 3] - other[..., 1])  # [..., M]
    top_left = torch.max(boxes[..., :, None, :2], other[..., None, :, :2])  # [..., A, M, 2]
    bottom_right = torch.min(boxes[..., :, None, 2:], other[..., None, :, 2:])  # [..., A, M, 2]
    size = (bottom_right - top_left).clamp(min=0)
    intersection = size[..., 0] * size[..., 1]  # [..., A, M]
    union = (area[..., None] + area_other[..., None, :] - intersection).clamp_min(eps)
    return intersection / union


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
