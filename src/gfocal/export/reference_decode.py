"""Reference pre-processing and decoding for gfocal's raw ONNX outputs, in numpy only.

Copy this file to deploy a gfocal model with any runtime: it needs numpy and nothing else,
and it is tested to give the same detections as ``model.eval()(images)`` in PyTorch.

    image (H0, W0, 3) uint8 RGB
      -> preprocess: keep-ratio resize (optionally pad with the mean colour)  (float32 0-255, [1, 3, H, W])
      -> the ONNX graph (form "raw"): normalise and pad to a multiple of 32 inside, network
            scores [N, A, C], box_outputs [N, A, 4*B], points [A, 2], strides [A] (+ score_factors [N, A])
      -> decode: per level top-k above the score threshold, softmax -> Integral -> distances x stride
         (or deltas applied to the location's square anchor) -> boxes, class-aware NMS, rescale to
         the original image; the std of each edge's
         distribution (x stride x std_scale) comes out as "edge_std", pixels

Shape letters: A locations over all levels, C classes, B bins per edge (reg_max + 1, or 1 for a
Dirac box), K candidates, D detections. The settings (thresholds, sizes) are in the ONNX file's
``gfocal_config`` metadata; :func:`decode_settings` reads them from that JSON. B > 1 outputs per
edge are a distribution; B = 1 is a distance per edge, or, for the anchor-based ATSS baseline
and RetinaNet (``box="anchor_delta"``), the deltas (dx, dy, dw, dh) of a square anchor of ``anchor_scale``
strides, normalised by ``delta_stds``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

__all__ = ["DecodeSettings", "decode_settings", "resize_keep_ratio", "preprocess", "decode", "nms"]


@dataclass(frozen=True)
class DecodeSettings:
    """What decoding needs from the model's config (ModelConfig field names)."""

    num_classes: int
    score_threshold: float = 0.05
    pre_nms_top_k: int = 1000  # per level
    nms_iou_threshold: float = 0.6
    max_detections: int = 100
    min_size: int = 800
    max_size: int = 1333
    size_divisible: int = 32
    image_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)  # RGB, [0, 1] units
    std_scale: float = 1.0  # temperature on the reported edge std (gfocal analyze calibration)
    box: str = "dfl"  # "anchor_delta": B = 1 outputs are anchor deltas, not distances
    anchor_scale: float = 8.0  # the anchor's side in strides (box="anchor_delta")
    box_voting: str = "off"  # "score" or "distribution": kept boxes averaged over the overlapping candidates
    box_voting_sigma: float = 0.025
    delta_stds: tuple[float, float, float, float] = (0.1, 0.1, 0.2, 0.2)  # ATSS's; RetinaNet's are 1s


#: The anchor deltas' size-ratio limit, as gfocal.ops.anchors.
WH_RATIO_CLIP = 16 / 1000


def decode_settings(config_json: str) -> DecodeSettings:
    """Settings from the ``gfocal_config`` metadata string of an exported ONNX file."""
    config = json.loads(config_json)
    # Files exported before a field existed lack it and keep its default.
    values = {name: config[name] for name in DecodeSettings.__dataclass_fields__ if name in config}
    tuples = {name: tuple(values[name]) for name in ("image_mean", "delta_stds") if name in values}
    return DecodeSettings(**{**values, **tuples})


def resize_keep_ratio(image: np.ndarray, min_size: int, max_size: int) -> tuple[np.ndarray, float, float]:
    """Antialiased bilinear keep-ratio resize: shorter side to ``min_size``, longer side at most ``max_size``.

    The rule of ``gfocal.image_geometry.fit_size`` and the resampling of PyTorch's
    ``F.interpolate(mode="bilinear", antialias=True)`` on float pixels, which is what the
    gfocal model applies. Returns (float32 image [H, W, 3], scale_x, scale_y).
    """
    height, width = image.shape[:2]
    scale = min(min_size / min(height, width), max_size / max(height, width))
    new_height, new_width = max(1, round(height * scale)), max(1, round(width * scale))
    image = image.astype(np.float32)
    if (new_height, new_width) == (height, width):
        return image, 1.0, 1.0
    rows = _antialiased_weights(height, new_height)  # [H, H0]
    cols = _antialiased_weights(width, new_width)  # [W, W0]
    resized = np.einsum("oi,ijc->ojc", rows, np.einsum("oj,ijc->ioc", cols, image))
    return resized.astype(np.float32), new_width / width, new_height / height


def _antialiased_weights(size_in: int, size_out: int) -> np.ndarray:
    """[size_out, size_in] weights of a triangle filter widened by the reduction factor (PIL's and PyTorch's)."""
    scale = size_in / size_out
    support = max(scale, 1.0)  # the filter's radius in input pixels
    centres = scale * (np.arange(size_out) + 0.5)  # [O]
    first = np.maximum((centres - support + 0.5).astype(np.int64), 0)
    last = np.minimum((centres + support + 0.5).astype(np.int64), size_in)
    taps = np.arange(size_in)  # [I]
    weights = np.maximum(1 - np.abs((taps[None] - centres[:, None] + 0.5) / support), 0)  # [O, I]
    weights *= (taps[None] >= first[:, None]) & (taps[None] < last[:, None])
    return (weights / weights.sum(1, keepdims=True)).astype(np.float32)


def preprocess(
    image: np.ndarray, settings: DecodeSettings, pad: bool = False
) -> tuple[np.ndarray, tuple[int, int], tuple[float, float]]:
    """One RGB image [H0, W0, 3] (uint8 or float, 0-255) to the graph's input [1, 3, H, W] float32 0-255.

    The graph normalises and pads to a multiple of ``size_divisible`` itself, so by default the
    resized image goes in unpadded. ``pad=True`` pads here (bottom and right) to that multiple,
    for runtimes that want it, filling with the model's mean colour: the graph's normalisation
    maps it to exactly 0, the value PyTorch pads with, so the detections are the same. Padding to
    a *larger* canvas adds locations and changes detections slightly, as batching images of
    different sizes does in PyTorch.

    Returns:
        (input [1, 3, H, W], (height, width) of the resized image inside any padding,
        (scale_x, scale_y) resized pixels per original pixel).
    """
    resized, scale_x, scale_y = resize_keep_ratio(image, settings.min_size, settings.max_size)
    height, width = resized.shape[:2]
    if pad:
        divisor = settings.size_divisible
        canvas = np.empty((-(-height // divisor) * divisor, -(-width // divisor) * divisor, 3), np.float32)
        canvas[...] = np.asarray(settings.image_mean, np.float32) * 255
        canvas[:height, :width] = resized
        resized = canvas
    return resized.transpose(2, 0, 1)[None].copy(), (height, width), (scale_x, scale_y)


def decode(
    scores: np.ndarray,
    box_outputs: np.ndarray,
    points: np.ndarray,
    strides: np.ndarray,
    settings: DecodeSettings,
    image_size: tuple[int, int],
    scale: tuple[float, float] = (1.0, 1.0),
    score_factors: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Detections of ONE image from the raw outputs (take ``[i]`` of the batched ones).

    Args:
        scores [A, C]: class scores in [0, 1]. box_outputs [A, 4*B]. points [A, 2]. strides [A].
        image_size: (height, width) of the resized image inside the padding; boxes are clipped to it.
        scale: (scale_x, scale_y) from :func:`preprocess`; boxes are divided by it.
        score_factors [A] | None: centerness of the ATSS-baseline variants, multiplied in after
            thresholding.

    Returns:
        {"boxes" float32 [D, 4] xyxy in original pixels, "scores" [D], "labels" int64 [D]}, best first;
        for a distribution head (B > 1) also "edge_std" float32 [D, 4]: the standard deviation
        of each edge's distribution (left, top, right, bottom) in original pixels, times ``std_scale``.
    """
    num_classes = settings.num_classes
    # 1. Per level (levels are contiguous runs of equal stride): top-k scores, then the threshold.
    candidates = []
    level_starts = np.flatnonzero(np.r_[True, strides[1:] != strides[:-1]])
    for start, end in zip(level_starts, np.r_[level_starts[1:], len(strides)]):
        flat = scores[start:end].reshape(-1)  # [A_l * C], location-major
        k = min(settings.pre_nms_top_k, flat.size)
        top = np.argsort(-flat, kind="stable")[:k]
        top = top[flat[top] > settings.score_threshold]
        candidates.append(top + start * num_classes)
    flat_index = np.concatenate(candidates)
    locations, labels = flat_index // num_classes, flat_index % num_classes
    kept_scores = scores.reshape(-1)[flat_index]
    if score_factors is not None:
        kept_scores = kept_scores * score_factors[locations]

    # 2. Box outputs -> xyxy boxes in pixels (and a distribution's edge std in strides), clipped to the image.
    outputs = box_outputs[locations]  # [K, 4*B]
    if settings.box == "anchor_delta":
        boxes = _anchor_delta_boxes(outputs, points[locations], strides[locations], settings)
        spread = None
    else:
        boxes, spread = _distance_boxes(outputs, points[locations], strides[locations])
    height, width = image_size
    boxes = np.clip(boxes, 0, np.array([width, height, width, height], np.float32)).astype(np.float32)
    # A box the clipping empties (a location beyond the image) is no detection (mmdetection's min_bbox_size=0).
    nonempty = ((boxes[:, 2:] - boxes[:, :2]) > 0).all(1)
    boxes, kept_scores, labels, locations = (
        boxes[nonempty],
        kept_scores[nonempty],
        labels[nonempty],
        locations[nonempty],
    )
    if spread is not None:
        spread = spread[nonempty]

    # 3. Class-aware NMS, at most max_detections, then back to original pixels.
    keep = _class_aware_nms(boxes, kept_scores, labels, settings.nms_iou_threshold)[: settings.max_detections]
    kept_boxes = boxes[keep]
    if settings.box_voting != "off":
        variance = None
        if settings.box_voting == "distribution":  # the distribution's variance plus a bin's quantisation variance
            variance = (spread * strides[locations, None]) ** 2 + strides[locations, None] ** 2 / 12
        kept_boxes = _vote(kept_boxes, labels[keep], boxes, kept_scores, labels, settings.box_voting_sigma, variance)
    per_edge = np.array([scale[0], scale[1], scale[0], scale[1]], dtype=np.float32)
    result = {
        "boxes": kept_boxes / per_edge,
        "scores": kept_scores[keep].astype(np.float32),
        "labels": labels[keep].astype(np.int64),
    }
    if spread is not None:
        pixels = spread[keep] * strides[locations[keep], None] * settings.std_scale / per_edge
        result["edge_std"] = pixels.astype(np.float32)
    return result


def _distance_boxes(
    outputs: np.ndarray, points: np.ndarray, strides: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    """[K, 4*B] edge distribution logits (B > 1) or stride-unit distances (B = 1) -> ([K, 4] xyxy pixels,
    each edge's std in strides [K, 4], or None for distances)."""
    bins = outputs.shape[-1] // 4
    if bins > 1:  # edge distribution logits (a Dirac box has one stride-unit distance per edge)
        logits = outputs.reshape(len(outputs), 4, bins)  # [K, 4, B]
        probs = np.exp(logits - logits.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)  # softmax per edge
        values = np.arange(bins, dtype=np.float32)
        distances = probs @ values  # the Integral, [K, 4]
        spread = np.sqrt(np.clip(probs @ (values * values) - distances**2, 0, None))  # std in strides, [K, 4]
    else:
        distances, spread = outputs, None
    distances = distances * strides[:, None]  # left, top, right, bottom
    return np.concatenate((points - distances[:, :2], points + distances[:, 2:]), axis=-1), spread


def _anchor_delta_boxes(
    outputs: np.ndarray, points: np.ndarray, strides: np.ndarray, settings: DecodeSettings
) -> np.ndarray:
    """[K, 4] deltas (dx, dy, dw, dh), normalised by ``delta_stds``, on squares of ``anchor_scale`` strides
    centred on the points -> [K, 4] xyxy pixels."""
    deltas = outputs * np.asarray(settings.delta_stds, np.float32)
    size = (strides * settings.anchor_scale)[:, None]  # [K, 1], the anchor's side
    max_ratio = abs(np.log(WH_RATIO_CLIP))
    centre = points + size * deltas[:, :2]
    half = size * np.exp(np.clip(deltas[:, 2:], -max_ratio, max_ratio)) * 0.5
    return np.concatenate((centre - half, centre + half), axis=-1)


def _vote(
    kept: np.ndarray,
    kept_labels: np.ndarray,
    boxes: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    sigma: float,
    variance: np.ndarray | None,
) -> np.ndarray:
    """Box voting: each kept box [D, 4], edge by edge, the mean of the candidates [K, 4] of its class that
    overlap it, weighted by score x exp(-(1 - IoU)^2 / sigma) (/ the edge's variance [K, 4] when given)."""
    iou = _iou_matrix(kept, boxes)  # [D, K]
    weights = scores[None] * np.exp(-((1 - iou) ** 2) / sigma) * ((kept_labels[:, None] == labels[None]) & (iou > 0))
    weights = np.broadcast_to(weights[..., None], (*weights.shape, 4))  # [D, K, 4]
    if variance is not None:
        weights = weights / variance[None]
    total = weights.sum(1)  # [D, 4]; each kept box overlaps itself, so > 0
    return ((weights * boxes[None]).sum(1) / total).astype(np.float32)


def _iou_matrix(boxes: np.ndarray, other: np.ndarray) -> np.ndarray:
    """IoU of every box [D, 4] with every box of ``other`` [K, 4] (xyxy): [D, K]."""
    top_left = np.maximum(boxes[:, None, :2], other[None, :, :2])
    bottom_right = np.minimum(boxes[:, None, 2:], other[None, :, 2:])
    intersection = np.prod(np.clip(bottom_right - top_left, 0, None), axis=-1)
    areas, other_areas = (np.prod(b[:, 2:] - b[:, :2], axis=-1) for b in (boxes, other))
    return intersection / np.maximum(areas[:, None] + other_areas[None] - intersection, 1e-6)


def _class_aware_nms(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou_threshold: float) -> np.ndarray:
    """NMS within each class; indices of the kept boxes, by decreasing score."""
    keep = np.concatenate(
        [
            np.flatnonzero(labels == c)[nms(boxes[labels == c], scores[labels == c], iou_threshold)]
            for c in np.unique(labels)
        ]
        or [np.zeros(0, np.int64)]
    )
    return keep[np.argsort(-scores[keep], kind="stable")]


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression: indices of the kept boxes [K, 4] xyxy, by decreasing score.

    A box is dropped when its IoU with an already kept, higher-scoring box exceeds the threshold.
    """
    order = np.argsort(-scores, kind="stable")
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        width = np.clip(
            np.minimum(boxes[best, 2], boxes[rest, 2]) - np.maximum(boxes[best, 0], boxes[rest, 0]), 0, None
        )
        height = np.clip(
            np.minimum(boxes[best, 3], boxes[rest, 3]) - np.maximum(boxes[best, 1], boxes[rest, 1]), 0, None
        )
        intersection = width * height
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = intersection / (areas[best] + areas[rest] - intersection)
        order = rest[~(iou > iou_threshold)]  # as torchvision: a NaN IoU (two empty boxes) suppresses nothing
    return np.array(keep, dtype=np.int64)
