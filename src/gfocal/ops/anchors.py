"""Anchor boxes and the delta coding of boxes against them (the anchor-based ATSS baseline).

Shape letters: A  any number of locations (possibly several leading dims).

An anchor-based head predicts, per location, a correction of a fixed square anchor centred on the
location: the shift of its centre in anchor sizes and the log of its size ratio (R-CNN's delta
coding, as mmdetection's ``DeltaXYWHBBoxCoder``). The ATSS and max-IoU assigners use the same anchors
to pick samples, whatever the head predicts.

Reference: PAPER.md "Training recipe", Assignment (ATSS's square anchors of 8 strides); Girshick et
al., "Rich feature hierarchies" (2014), appendix C, for the delta coding.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["square_anchors", "delta_to_box", "box_to_delta"]

#: mmdetection's default limit on the predicted size ratio: ``|log(16 / 1000)|``, about 4.14.
WH_RATIO_CLIP = 16 / 1000


def square_anchors(points: Tensor, strides: Tensor, scale: float) -> Tensor:
    """Squares of side ``scale * stride`` centred on the points.

    Args:
        points (Tensor[..., 2]): (x, y) in pixels.
        strides (Tensor[...]): each point's stride, pixels.
        scale: the side in strides (ATSS's ``octave_base_scale``, 8).

    Returns:
        Tensor[..., 4] xyxy in pixels.
    """
    half = strides.unsqueeze(-1) * (scale / 2)
    return torch.cat((points - half, points + half), dim=-1)


def delta_to_box(
    anchors: Tensor, deltas: Tensor, stds: tuple[float, float, float, float], wh_ratio_clip: float = WH_RATIO_CLIP
) -> Tensor:
    """Apply deltas (dx, dy, dw, dh) to anchors: centre ``c + size * d_xy * std_xy``, size
    ``size * exp(clamp(d_wh * std_wh, ±|log wh_ratio_clip|))``. Means are zero, as in ATSS.

    Args:
        anchors (Tensor[..., 4]): xyxy in pixels.
        deltas (Tensor[..., 4]): the raw outputs, normalised by ``stds``.
        stds: the normalisation of (dx, dy, dw, dh); ATSS uses (0.1, 0.1, 0.2, 0.2).
        wh_ratio_clip: the smallest size ratio allowed (and its inverse the largest), so exp stays finite.

    Returns:
        Tensor[..., 4] xyxy in pixels, not clipped to any image.

    Reference: mmdetection ``delta2bbox`` (``add_ctr_clamp=False``, no ``max_shape``).
    """
    deltas = deltas * deltas.new_tensor(stds)  # [..., 4]
    centre = (anchors[..., :2] + anchors[..., 2:]) * 0.5  # [..., 2]
    size = anchors[..., 2:] - anchors[..., :2]  # [..., 2]
    max_ratio = abs(math.log(wh_ratio_clip))
    centre = centre + size * deltas[..., :2]
    size = size * deltas[..., 2:].clamp(-max_ratio, max_ratio).exp()
    return torch.cat((centre - size * 0.5, centre + size * 0.5), dim=-1)


def box_to_delta(anchors: Tensor, boxes: Tensor, stds: tuple[float, float, float, float]) -> Tensor:
    """The deltas (dx, dy, dw, dh) that :func:`delta_to_box` turns ``anchors`` into ``boxes`` with (its inverse,
    short of the size clamp): ``d_xy = (c_box - c_anchor) / size_anchor / std_xy``,
    ``d_wh = log(size_box / size_anchor) / std_wh``.

    Args:
        anchors (Tensor[..., 4]): xyxy in pixels.
        boxes (Tensor[..., 4]): xyxy in pixels, positive width and height.
        stds: the normalisation of (dx, dy, dw, dh); RetinaNet's is (1, 1, 1, 1).

    Returns:
        Tensor[..., 4], the regression targets of an anchor-based head.

    Reference: mmdetection ``bbox2delta`` (means zero).
    """
    anchor_centre = (anchors[..., :2] + anchors[..., 2:]) * 0.5
    anchor_size = anchors[..., 2:] - anchors[..., :2]
    box_centre = (boxes[..., :2] + boxes[..., 2:]) * 0.5
    box_size = boxes[..., 2:] - boxes[..., :2]
    deltas = torch.cat(((box_centre - anchor_centre) / anchor_size, torch.log(box_size / anchor_size)), dim=-1)
    return deltas / deltas.new_tensor(stds)
