"""Range diagnostics: does ``reg_max`` reach the edges that ATSS asks each level to predict?

A DFL head predicts each edge distance as a distribution over bins ``0..R`` (R = ``reg_max``) in
strides, and training clamps targets to ``R - 0.1`` (:func:`gfocal.ops.box_to_distance`), so an
edge farther than that from its positive location is learned as if it were at the last bin: the
box comes out cropped. This module runs the model's real assigner (ATSS by default, :func:`assign_targets`, as
training does) on a dataset's boxes at the model's input size and strides, without a network,
and reports per level the share of positive edges beyond the range and the ``reg_max`` that
would hold a given share of them.

Shape letters: N images of one input size, A locations, M boxes per image (padded), P positives.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from gfocal.data import DatasetRecords, ImageRecord
from gfocal.image_geometry import fit_size
from gfocal.models import MODELS, ModelConfig
from gfocal.models.assigner import needs_predictions
from gfocal.models.components import build_assigner
from gfocal.models.config import image_size_options
from gfocal.models.grid import LocationGrid, location_grid
from gfocal.models.targets import assign_targets
from gfocal.models.weights import read_config
from gfocal.ops import box_to_distance

__all__ = [
    "CLAMP_MARGIN",
    "edge_range_statistics",
    "feature_grid",
    "model_settings",
    "positive_edge_distances",
    "suggest_reg_max",
]

#: Training clamps edge targets to ``reg_max - CLAMP_MARGIN`` strides (the paper's 0.1).
CLAMP_MARGIN = 0.1


def model_settings(
    num_classes: int,
    weights: str | os.PathLike[str] | None = None,
    model: str = "gfl_nano",
    image_size: int | None = None,
    reg_max: int | None = None,
) -> ModelConfig:
    """The config whose range to check: a weights file's, else a named model's, with the input size and
    ``reg_max`` optionally changed. No network is built."""
    if weights is not None:
        config = read_config(weights)
    elif model in MODELS:
        config = ModelConfig(num_classes=num_classes, **MODELS[model].defaults)  # type: ignore[attr-defined]
    else:
        raise ValueError(f"unknown model {model!r}; choose one of {sorted(MODELS)}")
    overrides: dict[str, Any] = {} if reg_max is None else {"reg_max": reg_max}
    if image_size is not None:
        overrides.update(image_size_options(config.min_size, config.max_size, image_size))
    return config.replace(**overrides)


def feature_grid(config: ModelConfig, height: int, width: int) -> LocationGrid:
    """The locations the network has for one input of ``height x width`` (after resizing), without running it.

    The image is padded to a multiple of ``size_divisible``; every stride-2 layer of the ResNet
    and the FPN's extra levels rounds up, so the level of stride s has ``ceil(padded / s)`` cells.
    """
    divisor = config.size_divisible
    padded_h, padded_w = math.ceil(height / divisor) * divisor, math.ceil(width / divisor) * divisor
    shapes = [(math.ceil(padded_h / s), math.ceil(padded_w / s)) for s in config.strides]
    return location_grid(shapes, config.strides, config.point_offset, torch.device("cpu"))


def positive_edge_distances(
    config: ModelConfig, records: DatasetRecords, batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """The edge distances, in strides, of every positive ATSS assigns on the dataset at the model's input.

    Crowd and difficult boxes are left out, as in training. Images are resized as the model
    resizes them (keep ratio, ``min_size``/``max_size``), using the sizes in the records.

    Returns:
        (distances float [P, 4] in strides, level index int [P], box id int [P] unique over the
        dataset, number of boxes, number of boxes without any positive).
    """
    assigner = build_assigner(config)
    if needs_predictions(assigner):
        raise ValueError(
            f"the range analysis assigns from the config alone, without a network; assigner={config.assigner!r} "
            "picks positives by a network's predictions, so they depend on its weights"
        )
    distances, levels, box_ids = [], [], []
    num_boxes = 0
    for size, chunk in _same_size_batches(records.images, config, batch_size):
        grid = feature_grid(config, *size)
        targets, first_ids = [], []
        for record in chunk:
            boxes = _input_boxes(record, size)
            targets.append({"boxes": boxes, "labels": torch.zeros(len(boxes), dtype=torch.long)})
            first_ids.append(num_boxes)
            num_boxes += len(boxes)
        positives = assign_targets(grid, targets, assigner).positives
        stride = positives.stride.unsqueeze(-1)  # [P, 1]
        distances.append(box_to_distance(positives.point / stride, positives.box / stride).numpy())  # [P, 4]
        levels.append((stride == stride.new_tensor(config.strides)).float().argmax(-1).numpy())  # [P]
        box_ids.append(torch.tensor(first_ids)[positives.image].numpy() + positives.gt_index.numpy())  # [P]
    if not distances:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64), 0, 0
    box_id = np.concatenate(box_ids)
    return np.concatenate(distances), np.concatenate(levels), box_id, num_boxes, num_boxes - len(np.unique(box_id))


def suggest_reg_max(distances: np.ndarray, coverage: float = 0.99) -> int:
    """The least ``reg_max`` that leaves at least ``coverage`` of the edge distances unclamped (below ``reg_max - 0.1``).

    Args:
        distances: edge distances in strides, any shape.
        coverage: the share of distances to hold, in (0, 1].
    """
    if not 0.0 < coverage <= 1.0:
        raise ValueError(f"coverage must be in (0, 1], got {coverage}")
    if distances.size == 0:
        return 1
    # An observed distance (not an interpolated one), so the share held is exact.
    quantile = float(np.quantile(distances, coverage, method="inverted_cdf"))
    return max(1, math.floor(quantile + CLAMP_MARGIN) + 1)


def edge_range_statistics(
    config: ModelConfig, records: DatasetRecords, coverage: float = 0.99, batch_size: int = 64
) -> dict[str, Any]:
    """How many positive edges lie beyond ``reg_max``, overall and per level, and a suggested ``reg_max``.

    An edge is *clamped* when its distance from the positive location is at least
    ``reg_max - 0.1`` strides: training teaches it as the last bin, so the prediction is cropped.

    Returns:
        JSON-ready dict: ``reg_max``, ``input_size`` (min, max), ``coverage``, ``images``, ``boxes``,
        ``boxes_without_positives``, ``positives``, ``clamped_edge_fraction`` (of the 4P edges),
        ``clamped_box_fraction`` (of the boxes with positives: any positive edge clamped),
        ``mean_clamped_pixels`` (how far beyond the range clamped edges are, pixels; None without any),
        ``suggested_reg_max``, and per level (``P3``...) ``stride``, ``positives``, ``clamped_edge_fraction``,
        ``max_distance`` and ``p99_distance`` (strides), ``range_pixels`` (``reg_max x stride``).
    """
    distances, levels, box_ids, num_boxes, without = positive_edge_distances(config, records, batch_size)
    limit = config.reg_max - CLAMP_MARGIN
    clamped = distances >= limit  # [P, 4]
    strides = np.asarray(config.strides, dtype=np.float64)[levels]  # [P]
    beyond_pixels = ((distances - limit) * strides[:, None])[clamped]
    clamped_boxes = np.unique(box_ids[clamped.any(-1)])
    boxes_with_positives = num_boxes - without
    result: dict[str, Any] = {
        "reg_max": config.reg_max,
        "input_size": [config.min_size, config.max_size],
        "coverage": coverage,
        "images": len(records.images),
        "boxes": num_boxes,
        "boxes_without_positives": without,
        "positives": len(distances),
        "clamped_edge_fraction": _fraction(clamped),
        "clamped_box_fraction": len(clamped_boxes) / boxes_with_positives if boxes_with_positives else 0.0,
        "mean_clamped_pixels": float(beyond_pixels.mean()) if beyond_pixels.size else None,
        "suggested_reg_max": suggest_reg_max(distances, coverage),
        "levels": {},
    }
    for level, stride in enumerate(config.strides):
        mask = levels == level
        level_distances = distances[mask]
        result["levels"][f"P{int(round(math.log2(stride)))}"] = {
            "stride": stride,
            "positives": int(mask.sum()),
            "clamped_edge_fraction": _fraction(clamped[mask]),
            "max_distance": float(level_distances.max()) if level_distances.size else None,
            "p99_distance": float(np.quantile(level_distances, 0.99)) if level_distances.size else None,
            "range_pixels": config.reg_max * stride,
        }
    return result


def _fraction(mask: np.ndarray) -> float:
    return float(mask.mean()) if mask.size else 0.0


def _same_size_batches(
    images: Sequence[ImageRecord], config: ModelConfig, batch_size: int
) -> Iterator[tuple[tuple[int, int], list[ImageRecord]]]:
    """Images with boxes grouped by their input size (one grid per group), in chunks of ``batch_size``."""
    groups: dict[tuple[int, int], list[ImageRecord]] = defaultdict(list)
    for record in images:
        if (~record.ignore_mask()).any():
            groups[fit_size(record.height, record.width, config.min_size, config.max_size)].append(record)
    for size, group in groups.items():
        for start in range(0, len(group), batch_size):
            yield size, group[start : start + batch_size]


def _input_boxes(record: ImageRecord, size: tuple[int, int]) -> torch.Tensor:
    """The record's trained boxes (Tensor[M, 4] xyxy) in the pixels of the resized input of ``size`` (h, w)."""
    boxes = torch.as_tensor(record.boxes()[~record.ignore_mask()], dtype=torch.float32).reshape(-1, 4)
    scale = torch.tensor([size[1] / record.width, size[0] / record.height] * 2)
    return boxes * scale
