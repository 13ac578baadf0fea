"""Box voting after NMS: each kept box becomes a weighted mean of the candidates that overlap it.

Shape letters:
    K  candidates of one image (before NMS)      D  detections kept by NMS

A dense detector predicts the same object from several neighbouring locations, and each prediction's
edges err independently to a degree. NMS keeps one of them and throws the others' evidence away; voting
averages it back, edge by edge, which lowers the error of the kept box where the predictions scatter (soft
object boundaries that annotators place differently, #28). Each candidate's weight is

    w = score x exp(-(1 - IoU with the kept box)^2 / sigma)            ("score")
    w = score x exp(-(1 - IoU with the kept box)^2 / sigma) / var_edge  ("distribution")

where ``var_edge`` is the variance of that edge's learned distribution (GFL's box is a distribution per
edge): the uncertainty-weighted "var voting" of He et al., *Bounding Box Regression with Uncertainty for
Accurate Object Detection* (CVPR 2019), with GFL's distribution in place of their Gaussian. The IoU kernel
keeps a neighbouring object's predictions out (at sigma 0.025 a candidate at IoU 0.6 weighs 0.2% of one at
IoU 1). Scores, labels and the order of the detections do not change.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gfocal.models.box_coding import BoxCoding
from gfocal.ops import batched_box_iou, distribution_std

__all__ = ["edge_variance", "vote_boxes"]


def vote_boxes(
    kept: Tensor,
    kept_labels: Tensor,
    candidates: Tensor,
    candidate_scores: Tensor,
    candidate_labels: Tensor,
    sigma: float,
    edge_variance: Tensor | None = None,
) -> Tensor:
    """The kept boxes, each edge replaced by the weighted mean of that edge over the candidates of its class.

    Any leading batch dimensions (written ``...``) are shared by all arguments: one image in
    ``postprocess_image``, a batch of fixed size in the ONNX graph.

    Args:
        kept (Tensor[..., D, 4]): boxes NMS kept (xyxy); each is also among the candidates, so it votes for itself.
        kept_labels (Tensor[..., D]): their classes (a kept slot with no candidate of its class stays as it is).
        candidates (Tensor[..., K, 4]): every box that entered NMS.
        candidate_scores (Tensor[..., K]): their scores (0: no vote).
        candidate_labels (Tensor[..., K]): their classes.
        sigma: width of the IoU kernel exp(-(1 - IoU)^2 / sigma); smaller trusts only near-duplicates.
        edge_variance (Tensor[..., K, 4] | None): variance of each candidate's edge, in pixels squared (see
            :func:`edge_variance`); ``None`` weighs by score and overlap only.

    Returns:
        Tensor[..., D, 4]: the voted boxes.
    """
    overlap = batched_box_iou(kept, candidates)  # [..., D, K]
    weights = candidate_scores.unsqueeze(-2) * torch.exp(-((1 - overlap) ** 2) / sigma)
    # Only boxes of the class that overlap the kept one vote: one that does not says nothing about this object.
    same = (kept_labels.unsqueeze(-1) == candidate_labels.unsqueeze(-2)) & (overlap > 0)
    weights = (weights * same).unsqueeze(-1)  # [..., D, K, 1]
    if edge_variance is not None:
        weights = weights / edge_variance.unsqueeze(-3)  # [..., D, K, 4]
    total = weights.sum(-2)  # [..., D, 1 or 4]
    voted = (weights * candidates.unsqueeze(-3)).sum(-2) / total.clamp_min(torch.finfo(total.dtype).tiny)
    return torch.where(total > 0, voted, kept)


def edge_variance(box_coding: BoxCoding, box_outputs: Tensor, strides: Tensor) -> Tensor:
    """Variance of each edge [..., K, 4] in pixels squared, from box outputs [..., K, 4 * B] at strides [..., K].

    The learned distribution's variance plus a bin's quantisation variance (stride^2 / 12), below which a
    distribution over bins one stride apart cannot resolve; it also keeps a distribution peaked in one bin
    from outvoting every other box.
    """
    if not box_coding.has_distributions:
        raise ValueError("box_voting='distribution' needs a distribution head (box='dfl'); use 'score'")
    pixels = distribution_std(box_coding.distributions(box_outputs)) * strides.unsqueeze(-1)  # [..., K, 4]
    return pixels**2 + strides.unsqueeze(-1) ** 2 / 12
