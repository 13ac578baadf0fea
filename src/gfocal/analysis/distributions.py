"""Per-edge statistics of learned box distributions, in pixels, and one ambiguity score per box.

Shape letters:
    K  boxes (detections, or annotations probed at their locations)
    B  bins per edge (``reg_max + 1``)

Edges are ordered left, top, right, bottom everywhere (:data:`EDGES`). A
distribution over bins ``0..R`` is a distance from the box's location point
(in strides); this module places every bin on the image axis in pixels, so
that peaks, expected edges and annotated edges can be compared directly.

The ambiguity score (:func:`ambiguity_score`) is documented there and in
``docs/analysis.md``.

Reference: PAPER.md "Two observations worth turning into features", 2.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from gfocal.ops import distribution_entropy, distribution_focal_loss, distribution_std, peak_statistics

__all__ = [
    "EDGES",
    "EDGE_STATISTICS",
    "ANNOTATION_STATISTICS",
    "ambiguity_score",
    "annotation_statistics",
    "bin_positions",
    "distribution_statistics",
    "edge_focus",
    "edge_statistics",
    "require_distribution_head",
    "to_records",
]

EDGES = ("left", "top", "right", "bottom")
# Per-edge statistics, each Tensor[K, 4], in the order records and CSV columns list them.
EDGE_STATISTICS = (
    "position",
    "std",
    "std_bins",
    "entropy",
    "focus",
    "num_modes",
    "second_peak_ratio",
    "second_peak_position",
    "peak_position",
)
# Per-edge agreement of the annotation with the distribution (:func:`annotation_statistics`).
ANNOTATION_STATISTICS = ("annotated_position", "annotated_offset", "annotated_nll", "annotated_at_second_peak")
# +1 for left/top (a larger distance moves the edge towards smaller coordinates), -1 otherwise.
_OUTWARD = (-1.0, -1.0, 1.0, 1.0)


def require_distribution_head(model: nn.Module, purpose: str) -> None:
    """Raise ValueError unless the detector's box coding predicts edge distributions."""
    if not model.head.box_coding.has_distributions:
        raise ValueError(f"{purpose} needs a distribution head (box='dfl'); this model regresses Dirac boxes")


def bin_positions(probs: Tensor, boxes: Tensor, bin_size: Tensor) -> Tensor:
    """Where each bin of each edge distribution lies on the image axis, in pixels.

    The box edges are the distributions' expectations (the Integral), so the
    location point is recovered from them: bin ``i`` of the left edge sits at
    ``x1 + (E[left] - i) * bin_size``, of the right edge at ``x2 + (i - E[right]) * bin_size``.

    Args:
        probs (Tensor[K, 4, B]): edge distributions (probabilities).
        boxes (Tensor[K, 4]): xyxy boxes decoded from them, in pixels.
        bin_size (Tensor[K, 4]): pixels per bin along each edge.

    Returns:
        Tensor[K, 4, B]: x (left, right) or y (top, bottom) pixel coordinate of every bin.
    """
    bins = torch.arange(probs.shape[-1], dtype=probs.dtype, device=probs.device)  # [B]
    expected = probs @ bins  # [K, 4]
    outward = probs.new_tensor(_OUTWARD)  # [4]
    offset = (bins - expected.unsqueeze(-1)) * (outward * bin_size).unsqueeze(-1)  # [K, 4, B]
    return boxes.unsqueeze(-1) + offset


def edge_focus(probs: Tensor) -> Tensor:
    """Mass of the best pair of neighbouring bins, in [0, 1].

    DFL trains a sharp edge to put all its mass on the two bins around it, so a
    focused (confident) edge has focus close to 1; a blurred or multi-modal one
    spreads mass elsewhere.

    Args:
        probs (Tensor[..., B]): probabilities.

    Returns:
        Tensor[...]: ``max_i (p_i + p_{i+1})``.
    """
    return (probs[..., :-1] + probs[..., 1:]).amax(dim=-1)


def ambiguity_score(focus: Tensor) -> Tensor:
    """One ambiguity score per box from its four edges' focus, in [0, 1].

    ``score = mean of the two largest (1 - focus_e) over the edges e``: the
    mass each edge puts outside its best pair of neighbouring bins, averaged
    over the two least certain edges. An object with one or two ambiguous
    edges scores high even when its other edges are sharp, while one noisy
    edge alone counts half. Scale-free (bins, not pixels), so small and large
    objects compare fairly.

    Args:
        focus (Tensor[K, 4]): :func:`edge_focus` of each edge.

    Returns:
        Tensor[K]: the score; 0 for four perfectly focused edges.
    """
    return (1.0 - focus).topk(2, dim=-1).values.mean(dim=-1)


def distribution_statistics(
    probs: Tensor, boxes: Tensor, bin_size: Tensor, min_ratio: float = 0.1
) -> dict[str, Tensor]:
    """Every per-edge statistic and the box ambiguity score.

    Args:
        probs (Tensor[K, 4, B]): edge distributions, edges left, top, right, bottom.
        boxes (Tensor[K, 4]): xyxy boxes decoded from ``probs``, pixels.
        bin_size (Tensor[K, 4]): pixels per bin of each edge.
        min_ratio: peaks below this fraction of the highest are not modes (:func:`peak_statistics`).

    Returns:
        dict of Tensor[K, 4] (per edge) unless noted:

        - ``position``: expected edge coordinate (x for left/right, y for top/bottom), pixels;
        - ``std``: standard deviation, pixels; ``std_bins``: the same in bins;
        - ``entropy``: nats, in [0, log B]; ``focus``: :func:`edge_focus`, in [0, 1];
        - ``num_modes`` (int64), ``second_peak_ratio`` in [0, 1];
        - ``second_peak_position`` (pixels, NaN when unimodal), ``peak_position`` (pixels);
        - ``ambiguity`` (Tensor[K]): :func:`ambiguity_score`.
    """
    if probs.dim() != 3 or probs.shape[1] != 4:
        raise ValueError(f"distributions must have shape [K, 4, B], got {tuple(probs.shape)}")
    if boxes.shape != probs.shape[:1] + (4,) or bin_size.shape != probs.shape[:2]:
        raise ValueError(
            f"boxes {tuple(boxes.shape)} and bin_size {tuple(bin_size.shape)} must be [K, 4] for K={probs.shape[0]}"
        )
    probs, boxes, bin_size = probs.float(), boxes.float(), bin_size.float()
    positions = bin_positions(probs, boxes, bin_size)  # [K, 4, B]
    peaks = peak_statistics(probs, min_ratio)
    std_bins = distribution_std(probs)
    focus = edge_focus(probs)
    return {
        "position": boxes,
        "std": std_bins * bin_size,
        "std_bins": std_bins,
        "entropy": distribution_entropy(probs),
        "focus": focus,
        "num_modes": peaks.num_modes,
        "second_peak_ratio": peaks.second_peak_ratio,
        "second_peak_position": _position_at(positions, peaks.second_peak_position),
        "peak_position": _position_at(positions, peaks.peak_position),
        "ambiguity": ambiguity_score(focus),
    }


def annotation_statistics(
    probs: Tensor, annotated_bins: Tensor, annotated_boxes: Tensor, boxes: Tensor, min_ratio: float = 0.1
) -> dict[str, Tensor]:
    """How well each annotated edge agrees with the learned distribution of that edge.

    Args:
        probs (Tensor[K, 4, B]): edge distributions at the annotations' locations.
        annotated_bins (Tensor[K, 4]): annotated edge distances from the location point, in bins.
        annotated_boxes (Tensor[K, 4]): the annotated boxes, xyxy pixels.
        boxes (Tensor[K, 4]): the boxes decoded from ``probs``, xyxy pixels.
        min_ratio: see :func:`peak_statistics`.

    Returns:
        dict of Tensor[K, 4] unless noted:

        - ``annotated_position``: the annotated edge coordinate, pixels;
        - ``annotated_offset``: annotated minus expected coordinate, pixels;
        - ``annotated_nll``: the DFL of the annotated edge under the distribution, nats (the
          annotation's surprise; the target is clamped to the support [0, R]);
        - ``annotated_at_second_peak`` (bool): the distribution is multi-modal and the annotated
          edge is closer to its second peak than to its highest one;
        - ``disagreement`` (Tensor[K]): the largest ``annotated_nll`` over the four edges.
    """
    num_bins = probs.shape[-1]
    probs = probs.float()
    logits = probs.clamp_min(torch.finfo(probs.dtype).tiny).log().reshape(-1, num_bins)  # [K*4, B]
    target = annotated_bins.float().clamp(0, num_bins - 1).reshape(-1)  # [K*4]
    nll = distribution_focal_loss(logits, target, reduction="none", validate=False).reshape(-1, 4)  # [K, 4]
    peaks = peak_statistics(probs, min_ratio)
    to_second = (annotated_bins - peaks.second_peak_position).abs()
    to_first = (annotated_bins - peaks.peak_position).abs()
    at_second = (peaks.num_modes >= 2) & (to_second < to_first)  # NaN compares False
    return {
        "annotated_position": annotated_boxes.float(),
        "annotated_offset": annotated_boxes.float() - boxes.float(),
        "annotated_nll": nll,
        "annotated_at_second_peak": at_second,
        "disagreement": nll.amax(dim=-1) if len(nll) else nll.new_zeros(0),
    }


def _position_at(positions: Tensor, bin_index: Tensor) -> Tensor:
    """positions (Tensor[K, 4, B]) at float bin indices (Tensor[K, 4], NaN kept) -> Tensor[K, 4]."""
    valid = ~bin_index.isnan()
    index = torch.where(valid, bin_index, 0).long().unsqueeze(-1)  # [K, 4, 1]
    return torch.where(valid, positions.gather(-1, index).squeeze(-1), float("nan"))


def edge_statistics(detection: Mapping[str, Tensor], min_ratio: float = 0.1) -> dict[str, Tensor]:
    """Per-edge statistics of the detections of one image.

    Args:
        detection: one image's output of ``model(images, return_distributions=True)`` in eval
            mode: ``boxes`` [K, 4], ``box_distributions`` [K, 4, B], ``bin_size`` [K, 4]
            (original-image pixels).
        min_ratio: see :func:`distribution_statistics`.

    Returns:
        :func:`distribution_statistics` of the K detections; ``std`` is the detection's ``edge_std``
        when it has one (the learned spread times the model's ``std_scale``).
    """
    missing = [k for k in ("boxes", "box_distributions", "bin_size") if k not in detection]
    if missing:
        raise KeyError(
            f"detection lacks {missing}; call the model with return_distributions=True (needs a box='dfl' model)"
        )
    statistics = distribution_statistics(
        detection["box_distributions"], detection["boxes"], detection["bin_size"], min_ratio
    )
    if "edge_std" in detection:  # the model's, with its calibrated temperature (std_scale) applied
        statistics["std"] = detection["edge_std"].float()
    return statistics


def to_records(
    statistics: Mapping[str, Tensor], extra: Mapping[str, Tensor | Sequence[Any]] | None = None
) -> list[dict[str, Any]]:
    """Flatten statistics into one plain dict per box (JSON/CSV ready).

    Per-edge statistics become ``<edge>_<name>`` keys (``left_std``...), per-box
    tensors keep their name; NaN becomes None. ``extra`` adds per-box columns
    (e.g. ``scores``, ``labels``, ``boxes``), each of length K.

    Args:
        statistics: from :func:`distribution_statistics` / :func:`edge_statistics`.
        extra: more per-box values; a [K, 4] tensor named ``boxes`` becomes ``x0, y0, x1, y1``.

    Returns:
        K dicts of Python floats, ints and bools.
    """
    columns: dict[str, list[Any]] = {}
    for name, value in {**(extra or {}), **statistics}.items():
        if isinstance(value, Tensor) and value.dim() == 2 and value.shape[1] == 4:
            keys = ("x0", "y0", "x1", "y1") if name == "boxes" else tuple(f"{e}_{name}" for e in EDGES)
            for j, key in enumerate(keys):
                columns[key] = value[:, j].tolist()
        else:
            columns[name] = value.tolist() if isinstance(value, Tensor) else list(value)
    count = len(next(iter(columns.values()), []))
    return [{key: _plain(values[i]) for key, values in columns.items()} for i in range(count)]


def _plain(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
