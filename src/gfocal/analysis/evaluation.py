"""How well a score finds the objects whose edges are ambiguous by construction (synthetic data).

The synthetic generator (:mod:`gfocal.data.synthetic`) records, per annotation,
``ambiguous_edges``: which edges it blurred or partly occluded. These functions
turn that into labels and measure a score against them with the AUROC: the
probability that a random ambiguous object scores above a random clean one
(0.5 = chance, 1 = perfect ranking).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from gfocal.analysis.distributions import EDGES

__all__ = ["auroc", "ambiguity_labels", "edge_ambiguity_labels"]


def auroc(scores: Sequence[float] | np.ndarray, labels: Sequence[bool] | np.ndarray) -> float:
    """Area under the ROC curve, ties counted half (the Mann-Whitney U statistic).

    Args:
        scores (float [K]): higher means "more likely positive"; NaN scores are dropped.
        labels (bool [K]): True for positives.

    Returns:
        AUROC in [0, 1]; NaN when either class is empty.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    if scores.shape != labels.shape:
        raise ValueError(f"scores {scores.shape} and labels {labels.shape} differ in shape")
    keep = ~np.isnan(scores)
    scores, labels = scores[keep], labels[keep]
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    ranks[order] = np.arange(1, len(scores) + 1)
    # Average ranks over ties.
    unique, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    rank_sums = np.bincount(inverse, weights=ranks)
    ranks = (rank_sums / counts)[inverse]
    u = ranks[labels].sum() - positives * (positives + 1) / 2
    return float(u / (positives * negatives))


def edge_ambiguity_labels(extras: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """bool [K, 4]: edge e of annotation k is blurred or occluded (``extra["ambiguous_edges"]``)."""
    labels = np.zeros((len(extras), 4), dtype=bool)
    for k, extra in enumerate(extras):
        edges = extra.get("ambiguous_edges")
        if not isinstance(edges, Mapping):
            raise KeyError(
                f"annotation {k} has no 'ambiguous_edges' record (synthetic data from gfocal.data.synthetic?)"
            )
        labels[k] = [edges.get(edge) is not None for edge in EDGES]
    return labels


def ambiguity_labels(extras: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """bool [K]: the annotation has at least one blurred or occluded edge."""
    return edge_ambiguity_labels(extras).any(axis=1)
