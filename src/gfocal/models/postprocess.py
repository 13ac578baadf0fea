"""From per-location outputs to detections: per-level top-k, decode, clip, class-aware NMS.

Shape letters:
    A  locations of one image      C  classes      K  detections kept
    B  outputs per edge (reg_max + 1 bins, or 1 for a Dirac box)

Reference: PAPER.md "Training recipe", Inference.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import batched_nms

from gfocal.models.box_coding import BoxCoding
from gfocal.models.box_voting import edge_variance, vote_boxes
from gfocal.models.config import ModelConfig
from gfocal.models.grid import LocationGrid
from gfocal.ops import distribution_std

__all__ = ["postprocess_image"]


def postprocess_image(
    config: ModelConfig,
    box_coding: BoxCoding,
    cls_scores: Tensor,
    score_factors: Tensor | None,
    box_outputs: Tensor,
    grid: LocationGrid,
    image_size: tuple[int, int],
    return_distributions: bool = False,
) -> dict[str, Tensor]:
    """Detections of one image, in the coordinates of the (resized) network input.

    Args:
        config: the inference settings (thresholds, top-k, NMS IoU, detections kept).
        box_coding: reads ``box_outputs``.
        cls_scores (Tensor[A, C]): class (or joint) scores in [0, 1].
        score_factors (Tensor[A] | None): centerness multiplied in after thresholding (ATSS baseline).
        box_outputs (Tensor[A, 4*B]): edge distribution logits or stride-unit distances.
        grid: the locations' points, strides and level sizes.
        image_size: (height, width) of the image before padding; boxes are clipped to it, and those
            the clipping leaves without width or height are dropped.
        return_distributions: also return ``box_distributions`` (Tensor[K, 4, B], probabilities
            over bins, edges left, top, right, bottom), ``edge_std`` (Tensor[K, 4], standard deviation
            of each edge in pixels, times ``config.std_scale``) and ``bin_size`` (Tensor[K, 4], pixels
            per bin along each edge).

    Returns:
        {"boxes" [K, 4], "scores" [K], "labels" int64 [K]} (+ the optional keys), sorted by score.
    """
    candidate_scores, candidate_locations, candidate_labels = [], [], []
    start = 0
    for size in grid.level_sizes:
        level_scores = cls_scores[start : start + size].reshape(-1)  # [A_l * C]
        top = level_scores.topk(min(config.pre_nms_top_k, level_scores.numel()))
        keep = top.values > config.score_threshold
        indices = top.indices[keep]
        candidate_scores.append(top.values[keep])
        candidate_locations.append(indices // config.num_classes + start)
        candidate_labels.append(indices % config.num_classes)
        start += size
    scores = torch.cat(candidate_scores)
    locations = torch.cat(candidate_locations)
    labels = torch.cat(candidate_labels)
    if score_factors is not None:
        scores = scores * score_factors[locations]

    selected_outputs = box_outputs[locations]  # [K', 4*B]
    boxes = box_coding.decode(selected_outputs, grid.points[locations], grid.strides[locations])
    height, width = image_size
    boxes = torch.stack(
        (
            boxes[:, 0].clamp(0, width),
            boxes[:, 1].clamp(0, height),
            boxes[:, 2].clamp(0, width),
            boxes[:, 3].clamp(0, height),
        ),
        dim=-1,
    )
    # A location beyond the image (in the padding of a batch) can decode to a box that the clipping
    # empties; such a box is no detection, as in mmdetection (min_bbox_size=0 keeps width, height > 0).
    nonempty = ((boxes[:, 2:] - boxes[:, :2]) > 0).all(1)  # [K']
    boxes, scores, labels = boxes[nonempty], scores[nonempty], labels[nonempty]
    locations, selected_outputs = locations[nonempty], selected_outputs[nonempty]
    keep = batched_nms(boxes, scores, labels, config.nms_iou_threshold)[: config.max_detections]
    result = {"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]}
    if config.box_voting != "off":
        variance = None
        if config.box_voting == "distribution":
            variance = edge_variance(box_coding, selected_outputs, grid.strides[locations])
        result["boxes"] = vote_boxes(
            result["boxes"], result["labels"], boxes, scores, labels, config.box_voting_sigma, variance
        )
    if return_distributions:
        strides = grid.strides[locations[keep]]
        result.update(_distribution_outputs(box_coding, selected_outputs[keep], strides, config.std_scale))
    return result


def _distribution_outputs(
    box_coding: BoxCoding, box_outputs: Tensor, strides: Tensor, std_scale: float
) -> dict[str, Tensor]:
    """Edge distributions [K, 4, B], their standard deviations (times ``std_scale``) and bin sizes in pixels [K, 4]."""
    if not box_coding.has_distributions:
        raise ValueError("return_distributions needs a distribution head (box='dfl'); this model regresses Dirac boxes")
    probs = box_coding.distributions(box_outputs)
    return {
        "box_distributions": probs,
        "edge_std": distribution_std(probs) * strides.unsqueeze(-1) * std_scale,
        "bin_size": strides.unsqueeze(-1).expand(-1, 4).clone(),
    }
