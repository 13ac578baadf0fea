"""Is the learned spread calibrated? Predicted edge std against actual edge error, and score against IoU.

For a matched detection, each edge distribution's std (pixels) is a claim about how far the
expected edge may be from the true one. If the claim is calibrated, among edges of predicted
std about s the root-mean-square error is about s. Measured here, on numpy arrays:

- :func:`spread_reliability`: edges binned by predicted std (equal counts), per bin the root
  mean variance (RMV) and the RMS error (RMSE), and the expected normalised calibration error
  ``ENCE = mean_b |RMV_b - RMSE_b| / RMV_b`` (0 = calibrated, scale-free);
- :func:`rank_correlation`: Spearman's rank correlation of std and absolute error (does a larger
  std mark a worse edge, whatever the scale);
- :func:`fit_std_scale`: the one-parameter temperature ``t`` that makes ``t * std`` fit the
  errors best (Gaussian likelihood; closed form);
- :func:`score_reliability`: the joint classification-quality score against the IoU it estimates,
  in equal-width bins, with ``ECE = sum_b n_b / n |mean score_b - mean IoU_b|``.

Shape letters: E edges (or boxes), D detections.

Reference: Levi et al., "Evaluating and Calibrating Uncertainty Prediction in Regression Tasks"
(2022), ENCE and RMV/RMSE reliability diagrams; Guo et al. (2017), ECE and temperature scaling.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["average_ranks", "fit_std_scale", "rank_correlation", "score_reliability", "spread_reliability"]


def rank_correlation(x: np.ndarray, y: np.ndarray) -> float | None:
    """Spearman's rank correlation of two equal-length 1-D arrays (ties get their average rank).

    Returns:
        A value in [-1, 1]; None with fewer than 2 values or when one array is constant.
    """
    x, y = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"rank_correlation needs arrays of one length, got {x.size} and {y.size}")
    if x.size < 2:
        return None
    rx, ry = average_ranks(x), average_ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    norm = np.sqrt((rx * rx).sum() * (ry * ry).sum())
    return float((rx * ry).sum() / norm) if norm > 0 else None


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1 of a 1-D array (float [n]), tied values sharing the mean of their ranks."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    # Each run of equal values: its first and last position in sorted order.
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_values)) + 1]
    ends = np.r_[starts[1:], len(values)]
    run_rank = (starts + ends - 1) / 2.0
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(run_rank, ends - starts)
    return ranks


def spread_reliability(std: np.ndarray, error: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """Reliability of predicted spreads: RMV against RMSE in bins of equal counts by predicted std.

    Args:
        std (float [E]): predicted standard deviations, pixels, >= 0.
        error (float [E]): actual errors (predicted minus true), same pixels; signed or absolute.
        bins: at most this many bins (fewer when there are fewer edges).

    Returns:
        JSON-ready dict: ``count``; ``rmv`` and ``rmse`` overall (pixels); ``ratio`` = rmse / rmv
        (1 = calibrated on average, > 1 overconfident); ``ence``; ``spearman`` of std and |error|;
        ``bins``: per bin ``count``, ``rmv``, ``rmse``, ``std_low``, ``std_high``. Values are None
        without edges.
    """
    std, error = np.asarray(std, dtype=np.float64).ravel(), np.asarray(error, dtype=np.float64).ravel()
    if std.shape != error.shape:
        raise ValueError(f"std and error must have one length, got {std.size} and {error.size}")
    if (std < 0).any() or not np.isfinite(std).all() or not np.isfinite(error).all():
        raise ValueError("std must be finite and >= 0, error finite")
    if std.size == 0:
        return {"count": 0, "rmv": None, "rmse": None, "ratio": None, "ence": None, "spearman": None, "bins": []}
    order = np.argsort(std, kind="stable")
    rows = []
    for chunk in np.array_split(order, min(bins, std.size)):
        rmv, rmse = np.sqrt(np.mean(std[chunk] ** 2)), np.sqrt(np.mean(error[chunk] ** 2))
        rows.append(
            {
                "count": int(chunk.size),
                "rmv": float(rmv),
                "rmse": float(rmse),
                "std_low": float(std[chunk].min()),
                "std_high": float(std[chunk].max()),
            }
        )
    # Bins whose predicted spread is 0 have no scale to normalise by.
    normalised = [abs(r["rmv"] - r["rmse"]) / r["rmv"] for r in rows if r["rmv"] > 0]
    rmv, rmse = float(np.sqrt(np.mean(std**2))), float(np.sqrt(np.mean(error**2)))
    return {
        "count": int(std.size),
        "rmv": rmv,
        "rmse": rmse,
        "ratio": rmse / rmv if rmv > 0 else None,
        "ence": float(np.mean(normalised)) if normalised else None,
        "spearman": rank_correlation(std, np.abs(error)),
        "bins": rows,
    }


def fit_std_scale(std: np.ndarray, error: np.ndarray, min_std: float = 1e-3) -> float:
    """The temperature ``t`` maximising the Gaussian likelihood of ``error`` under std ``t * std``.

    ``t^2 = mean((error / std)^2)``, the minimiser of ``sum log(t std) + error^2 / (2 t^2 std^2)``.
    Stds below ``min_std`` pixels are raised to it (a collapsed distribution would dominate).

    Args:
        std (float [E]) and error (float [E]): as :func:`spread_reliability`; fit on a validation set.

    Returns:
        t > 0; 1.0 without edges.
    """
    std, error = np.asarray(std, dtype=np.float64).ravel(), np.asarray(error, dtype=np.float64).ravel()
    if std.size == 0:
        return 1.0
    scale = float(np.sqrt(np.mean((error / np.maximum(std, min_std)) ** 2)))
    return scale if scale > 0 else 1.0


def score_reliability(scores: np.ndarray, ious: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """Calibration of the joint score against the IoU it estimates, in equal-width score bins over [0, 1].

    Args:
        scores (float [D]): detection scores in [0, 1].
        ious (float [D]): each detection's IoU with its best same-class annotation (0 when none).
        bins: number of bins.

    Returns:
        JSON-ready dict: ``count``, ``ece``, ``spearman`` (score vs IoU), ``mean_score``, ``mean_iou``,
        ``bins``: per non-empty bin ``low``, ``high``, ``count``, ``mean_score``, ``mean_iou``.
    """
    scores, ious = np.asarray(scores, dtype=np.float64).ravel(), np.asarray(ious, dtype=np.float64).ravel()
    if scores.shape != ious.shape:
        raise ValueError(f"scores and ious must have one length, got {scores.size} and {ious.size}")
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(scores, edges[1:-1]), 0, bins - 1)  # [D] bin of each score
    rows, ece = [], 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            mean_score, mean_iou = float(scores[mask].mean()), float(ious[mask].mean())
            ece += mask.sum() / scores.size * abs(mean_score - mean_iou)
            rows.append(
                {"low": float(edges[b]), "high": float(edges[b + 1]), "count": int(mask.sum()),
                 "mean_score": mean_score, "mean_iou": mean_iou}
            )  # fmt: skip
    empty = scores.size == 0
    return {
        "count": int(scores.size),
        "ece": None if empty else float(ece),
        "spearman": rank_correlation(scores, ious),
        "mean_score": None if empty else float(scores.mean()),
        "mean_iou": None if empty else float(ious.mean()),
        "bins": rows,
    }
