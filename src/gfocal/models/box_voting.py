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
from torchvision.ops import box_iou

__all__ = ["vote_boxes"]


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

    Args:
        kept (Tensor[D, 4]): boxes NMS kept (xyxy); each is also among the candidates, so it votes for itself.
        kept_labels (Tensor[D]): their classes.
        candidates (Tensor[K, 4]): every box that entered NMS.
        candidate_scores (Tensor[K]): their scores.
        candidate_labels (Tensor[K]): their classes.
        sigma: width of the IoU kernel exp(-(1 - IoU)^2 / sigma); smaller trusts only near-duplicates.
        edge_variance (Tensor[K, 4] | None): variance of each candidate's edge, in pixels squared; ``None``
            weighs by score and overlap only.

    Returns:
        Tensor[D, 4]: the voted boxes.
    """
    if kept.numel() == 0:
        return kept
    overlap = box_iou(kept, candidates)  # [D, K]
    weights = candidate_scores.unsqueeze(0) * torch.exp(-((1 - overlap) ** 2) / sigma)
    # Only boxes of the class that overlap the kept one vote: one that does not says nothing about this object.
    weights = weights * ((kept_labels.unsqueeze(1) == candidate_labels.unsqueeze(0)) & (overlap > 0))  # [D, K]
    weights = weights.unsqueeze(-1).expand(-1, -1, 4)  # [D, K, 4]
    if edge_variance is not None:
        weights = weights / edge_variance.unsqueeze(0)
    return (weights * candidates.unsqueeze(0)).sum(1) / weights.sum(1)
