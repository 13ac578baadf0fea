"""Assigners: which location trains on which ground truth.

:mod:`~gfocal.models.assigner.contract` holds what every assigner reads and returns; each assigner is
one module beside it (``atss``, ``task_aligned``, ``fcos``, ``max_iou``) and one line in
:data:`gfocal.models.components.ASSIGNERS`.
"""

from gfocal.models.assigner.atss import ATSSAssigner, atss_assign
from gfocal.models.assigner.contract import (
    Assigner,
    AssignerInputs,
    Assignment,
    PaddedTargets,
    Predictions,
    empty_assignment,
    needs_predictions,
    points_inside,
)

__all__ = [
    "ATSSAssigner",
    "Assigner",
    "AssignerInputs",
    "Assignment",
    "PaddedTargets",
    "Predictions",
    "atss_assign",
    "empty_assignment",
    "needs_predictions",
    "points_inside",
]
