"""Calibration statistics on hand-made spreads and errors whose answer is known."""

import numpy as np
import pytest

from gfocal.analysis.calibration import fit_std_scale, rank_correlation, score_reliability, spread_reliability


def gaussian_errors(n=20000, seed=0):
    """Stds spread over 1-10 px and errors drawn with exactly those stds: calibrated by construction."""
    rng = np.random.default_rng(seed)
    std = rng.uniform(1.0, 10.0, n)
    return std, rng.normal(0.0, std)


def test_calibrated_spreads_score_near_zero():
    std, error = gaussian_errors()
    stats = spread_reliability(std, error, bins=10)
    assert stats["ence"] < 0.05 and stats["ratio"] == pytest.approx(1.0, abs=0.03)
    assert all(r["rmse"] == pytest.approx(r["rmv"], rel=0.1) for r in stats["bins"])
    assert sum(r["count"] for r in stats["bins"]) == len(std) and len(stats["bins"]) == 10
    assert stats["spearman"] > 0.3  # a larger std marks a larger error
    assert fit_std_scale(std, error) == pytest.approx(1.0, abs=0.03)


def test_overconfident_spreads_are_found_and_the_temperature_fixes_them():
    std, error = gaussian_errors()
    stats = spread_reliability(std, 2 * error)
    # Every bin's RMSE is twice its RMV: |RMV - 2 RMV| / RMV = 1.
    assert stats["ence"] == pytest.approx(1.0, abs=0.05) and stats["ratio"] == pytest.approx(2.0, abs=0.06)
    scale = fit_std_scale(std, 2 * error)
    assert scale == pytest.approx(2.0, abs=0.06)
    assert spread_reliability(scale * std, 2 * error)["ence"] < 0.05
    # A temperature rescales, it does not reorder.
    assert spread_reliability(scale * std, 2 * error)["spearman"] == pytest.approx(stats["spearman"])


def test_uninformative_spreads_rank_nothing():
    rng = np.random.default_rng(1)
    stats = spread_reliability(rng.uniform(1, 10, 5000), rng.normal(0, 5, 5000))
    assert abs(stats["spearman"]) < 0.05


def test_rank_correlation_matches_scipy_with_ties():
    spearmanr = pytest.importorskip("scipy.stats").spearmanr  # not a dependency; checked where present
    rng = np.random.default_rng(2)
    x, y = rng.integers(0, 5, 200).astype(float), rng.integers(0, 7, 200).astype(float)
    assert rank_correlation(x, y) == pytest.approx(spearmanr(x, y).statistic)


def test_rank_correlation_known_values():
    # Ties share ranks: x ranks (0, 1.5, 1.5, 3), y ranks (0, 2, 1, 3); Pearson of those is 4.5 / sqrt(4.5 * 5).
    assert rank_correlation(np.array([1.0, 2, 2, 3]), np.array([1.0, 3, 2, 4])) == pytest.approx(np.sqrt(4.5 / 5))
    assert rank_correlation(np.arange(5.0), np.arange(5.0) ** 3) == pytest.approx(1.0)
    assert rank_correlation(np.arange(5.0), -np.arange(5.0)) == pytest.approx(-1.0)
    assert rank_correlation(np.ones(4), np.arange(4.0)) is None and rank_correlation([1.0], [2.0]) is None


def test_score_reliability_known_gap():
    ious = np.linspace(0.05, 0.85, 81)
    assert score_reliability(ious, ious)["ece"] == pytest.approx(0.0, abs=1e-12)
    shifted = score_reliability(ious + 0.1, ious)
    assert shifted["ece"] == pytest.approx(0.1) and shifted["spearman"] == pytest.approx(1.0)
    assert sum(r["count"] for r in shifted["bins"]) == 81
    assert all(r["low"] <= r["mean_score"] <= r["high"] for r in shifted["bins"])


def test_empty_and_bad_input():
    assert spread_reliability(np.zeros(0), np.zeros(0))["ence"] is None
    assert score_reliability(np.zeros(0), np.zeros(0))["ece"] is None
    assert fit_std_scale(np.zeros(0), np.zeros(0)) == 1.0
    with pytest.raises(ValueError, match="std must be finite and >= 0"):
        spread_reliability(np.array([-1.0]), np.array([0.0]))
    with pytest.raises(ValueError, match="one length"):
        spread_reliability(np.ones(2), np.ones(3))
