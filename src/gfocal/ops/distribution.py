"""The general distribution of box edges: the Integral, box coding and shape statistics.

Shape letters used in this module:
    A  any number of locations (anchor points), possibly several leading dims
    R  ``reg_max`` (n in the paper); a distribution has R + 1 bins y_0=0 … y_R=R

Each of the four edge distances (left, top, right, bottom) from a location to
its box is a discrete distribution over the R + 1 bins; the distance itself is
the expectation of that distribution (the "Integral", PAPER.md "The
representations"). Distances are in stride units inside the model and in pixels
once multiplied by the level's stride.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

__all__ = [
    "decode_boxes",
    "integral",
    "distance_to_box",
    "box_to_distance",
    "distribution_entropy",
    "distribution_std",
    "PeakStatistics",
    "peak_statistics",
]


def integral(logits: Tensor) -> Tensor:
    """Expected bin value of a discrete distribution given by its logits.

    Args:
        logits (Tensor[..., R+1]): unnormalised log-probabilities over bins 0..R.

    Returns:
        Tensor[...]: ``sum_i softmax(logits)_i * i``, in bins (stride units), in [0, R].

    Reference: PAPER.md "The representations", the Integral ŷ = Σ P(y_i)·y_i.
    """
    bins = torch.arange(logits.shape[-1], dtype=logits.dtype, device=logits.device)
    return logits.softmax(dim=-1) @ bins


def distance_to_box(points: Tensor, distances: Tensor, max_shape: tuple[int, int] | None = None) -> Tensor:
    """Decode (left, top, right, bottom) distances from points into xyxy boxes.

    Args:
        points (Tensor[..., 2]): (x, y) of each location.
        distances (Tensor[..., 4]): non-negative distances to the four edges, same units as ``points``.
        max_shape: optional (height, width) to clip the boxes to.

    Returns:
        Tensor[..., 4]: boxes (x1, y1, x2, y2).
    """
    x, y = points[..., 0], points[..., 1]
    boxes = torch.stack(
        (x - distances[..., 0], y - distances[..., 1], x + distances[..., 2], y + distances[..., 3]), dim=-1
    )
    if max_shape is not None:
        height, width = max_shape
        boxes = torch.stack(
            (
                boxes[..., 0].clamp(0, width),
                boxes[..., 1].clamp(0, height),
                boxes[..., 2].clamp(0, width),
                boxes[..., 3].clamp(0, height),
            ),
            dim=-1,
        )
    return boxes


def decode_boxes(box_outputs: Tensor, points: Tensor, strides: Tensor, distribution: bool = True) -> Tensor:
    """Box outputs at some locations to xyxy boxes in pixels.

    Args:
        box_outputs (Tensor[..., 4*B]): per-edge distribution logits (``distribution``: the Integral of
            their softmax) or, with ``distribution`` False, distances in strides (B = 1, Dirac).
        points (Tensor[..., 2]) and strides (Tensor[...]) of the same locations.

    Returns:
        Tensor[..., 4] xyxy in pixels.
    """
    if distribution:
        distances = integral(box_outputs.unflatten(-1, (4, box_outputs.shape[-1] // 4)))  # [..., 4] in strides
    else:
        distances = box_outputs
    return distance_to_box(points, distances * strides.unsqueeze(-1))


def box_to_distance(points: Tensor, boxes: Tensor, max_distance: float | None = None, eps: float = 0.1) -> Tensor:
    """Encode xyxy boxes as (left, top, right, bottom) distances from points.

    Args:
        points (Tensor[..., 2]): (x, y) of each location.
        boxes (Tensor[..., 4]): boxes (x1, y1, x2, y2), same units as ``points``.
        max_distance: R for distribution targets; distances are clamped to
            ``[0, max_distance - eps]`` so that both neighbouring bins of a target exist.
        eps: margin below ``max_distance`` (the paper's 0.1).

    Returns:
        Tensor[..., 4]: distances, clamped when ``max_distance`` is given.
    """
    x, y = points[..., 0], points[..., 1]
    distances = torch.stack((x - boxes[..., 0], y - boxes[..., 1], boxes[..., 2] - x, boxes[..., 3] - y), dim=-1)
    if max_distance is not None:
        distances = distances.clamp(min=0, max=max_distance - eps)
    return distances


def distribution_entropy(probs: Tensor) -> Tensor:
    """Shannon entropy of discrete distributions, in nats.

    Args:
        probs (Tensor[..., R+1]): probabilities, each row summing to 1.

    Returns:
        Tensor[...]: entropy in [0, log(R+1)]; 0 for a one-hot distribution.
    """
    return -(probs * probs.clamp_min(torch.finfo(probs.dtype).tiny).log()).sum(dim=-1)


def distribution_std(probs: Tensor) -> Tensor:
    """Standard deviation of discrete distributions over bins 0..R, in bins.

    Args:
        probs (Tensor[..., R+1]): probabilities, each row summing to 1.

    Returns:
        Tensor[...]: standard deviation in bins (multiply by the stride for pixels).
    """
    bins = torch.arange(probs.shape[-1], dtype=probs.dtype, device=probs.device)
    mean = probs @ bins
    variance = probs @ (bins * bins) - mean * mean
    return variance.clamp_min(0).sqrt()


class PeakStatistics(NamedTuple):
    """Local maxima of discrete distributions (each field has the distributions' leading shape)."""

    num_modes: Tensor  # int64: local peaks at least ``min_ratio`` times the highest one
    second_peak_ratio: Tensor  # float in [0, 1]: second-highest local peak / highest; 0 when unimodal
    second_peak_position: Tensor  # float bin index of the second-highest local peak; NaN when unimodal
    peak_position: Tensor  # float bin index of the highest peak


def peak_statistics(probs: Tensor, min_ratio: float = 0.1) -> PeakStatistics:
    """Find the modes of discrete distributions: how many, and how strong the runner-up is.

    A bin is a local peak when it is higher than its left neighbour and not lower
    than its right one (bins outside the support count as -inf), so a plateau
    counts once. Peaks lower than ``min_ratio`` times the highest are noise and
    are not counted as modes, nor reported as the second peak.

    Args:
        probs (Tensor[..., R+1]): probabilities.
        min_ratio: relative height, in (0, 1], below which a local peak is ignored.

    Returns:
        PeakStatistics with tensors of shape [...].

    Reference: PAPER.md "Two observations", bimodal edge distributions mark ambiguous boundaries.
    """
    if not 0.0 < min_ratio <= 1.0:
        raise ValueError(f"min_ratio must be in (0, 1], got {min_ratio}")
    pad = torch.full_like(probs[..., :1], float("-inf"))
    left = torch.cat((pad, probs[..., :-1]), dim=-1)
    right = torch.cat((probs[..., 1:], pad), dim=-1)
    highest, peak_position = probs.max(dim=-1)
    is_peak = (probs > left) & (probs >= right) & (probs >= min_ratio * highest.unsqueeze(-1))
    num_modes = is_peak.sum(dim=-1)
    # The runner-up is the highest peak once the main peak's bin is masked (two equal peaks stay apart).
    is_main = torch.zeros_like(is_peak).scatter_(-1, peak_position.unsqueeze(-1), True)
    second_height, second_index = torch.where(is_peak & ~is_main, probs, torch.zeros_like(probs)).max(dim=-1)
    has_second = num_modes >= 2
    second_ratio = torch.where(has_second, second_height / highest.clamp_min(torch.finfo(probs.dtype).tiny), 0.0)
    second_position = torch.where(has_second, second_index.to(probs.dtype), torch.full_like(highest, float("nan")))
    return PeakStatistics(num_modes, second_ratio, second_position, peak_position.to(probs.dtype))
