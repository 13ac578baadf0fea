"""The method's math as pure functions on tensors: losses, the Integral, box coding, distribution statistics."""

from gfocal.ops.anchors import box_to_delta, delta_to_box, square_anchors
from gfocal.ops.distillation import localization_distillation_loss, resample_bins
from gfocal.ops.distribution import (
    PeakStatistics,
    box_to_distance,
    decode_boxes,
    distance_to_box,
    distribution_entropy,
    distribution_std,
    integral,
    peak_statistics,
)
from gfocal.ops.geometry import aligned_box_iou, batched_box_iou, centerness
from gfocal.ops.losses import distribution_focal_loss, generalized_focal_loss, quality_focal_loss, reduce_loss

__all__ = [
    "PeakStatistics",
    "aligned_box_iou",
    "batched_box_iou",
    "box_to_delta",
    "box_to_distance",
    "centerness",
    "decode_boxes",
    "delta_to_box",
    "distance_to_box",
    "distribution_entropy",
    "distribution_focal_loss",
    "distribution_std",
    "generalized_focal_loss",
    "integral",
    "localization_distillation_loss",
    "peak_statistics",
    "quality_focal_loss",
    "reduce_loss",
    "resample_bins",
    "square_anchors",
]
