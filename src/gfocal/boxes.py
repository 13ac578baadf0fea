"""Public home of the box-distribution functions (implemented in :mod:`gfocal.ops.distribution`)."""

from gfocal.ops.distribution import (
    PeakStatistics,
    box_to_distance,
    distance_to_box,
    distribution_entropy,
    distribution_std,
    integral,
    peak_statistics,
)

__all__ = [
    "PeakStatistics",
    "box_to_distance",
    "distance_to_box",
    "distribution_entropy",
    "distribution_std",
    "integral",
    "peak_statistics",
]
