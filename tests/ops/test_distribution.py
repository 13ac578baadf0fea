"""The Integral, box coding and distribution statistics."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gfocal.ops import (
    box_to_distance,
    distance_to_box,
    distribution_entropy,
    distribution_std,
    integral,
    peak_statistics,
)


def test_integral_of_a_one_hot_distribution_is_its_bin():
    logits = torch.full((17, 17), -1e4)
    logits[torch.arange(17), torch.arange(17)] = 1e4
    torch.testing.assert_close(integral(logits), torch.arange(17, dtype=torch.float32))


def test_integral_is_the_softmax_expectation_over_leading_dims():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 9)
    expected = (logits.softmax(-1) * torch.arange(9.0)).sum(-1)
    torch.testing.assert_close(integral(logits), expected)
    assert integral(logits).shape == (2, 3, 4)


def test_box_coding_round_trip_and_clamp():
    points = torch.tensor([[10.0, 10.0], [50.0, 40.0]])
    boxes = torch.tensor([[4.0, 2.0, 20.0, 13.0], [45.0, 30.0, 80.0, 41.0]])
    distances = box_to_distance(points, boxes)
    torch.testing.assert_close(distances, torch.tensor([[6.0, 8.0, 10.0, 3.0], [5.0, 10.0, 30.0, 1.0]]))
    torch.testing.assert_close(distance_to_box(points, distances), boxes)
    clamped = box_to_distance(points, boxes, max_distance=16)
    assert clamped.max() == pytest.approx(15.9)
    assert distance_to_box(points, distances, max_shape=(35, 60)).amax(0).tolist() == [45.0, 30.0, 60.0, 35.0]


@settings(max_examples=200, deadline=None)
@given(st.floats(0, 100), st.floats(0, 100), st.floats(0, 30), st.floats(0, 30), st.floats(0, 30), st.floats(0, 30))
def test_box_coding_is_the_identity_within_the_clamp(x, y, left, top, right, bottom):
    points = torch.tensor([[x, y]], dtype=torch.float64)
    distances = torch.tensor([[left, top, right, bottom]], dtype=torch.float64)
    boxes = distance_to_box(points, distances)
    recovered = box_to_distance(points, boxes, max_distance=16)
    torch.testing.assert_close(recovered, distances.clamp(max=15.9))


def test_entropy_and_std_of_known_distributions():
    one_hot = torch.zeros(17)
    one_hot[4] = 1
    uniform = torch.full((17,), 1 / 17)
    two_point = torch.zeros(17)
    two_point[2] = two_point[10] = 0.5
    probs = torch.stack((one_hot, uniform, two_point))
    torch.testing.assert_close(distribution_entropy(probs), torch.tensor([0.0, math.log(17), math.log(2)]))
    uniform_std = math.sqrt((17**2 - 1) / 12)
    torch.testing.assert_close(distribution_std(probs), torch.tensor([0.0, uniform_std, 4.0]))


def test_a_bimodal_distribution_has_two_modes_and_a_unimodal_one_has_one():
    bins = torch.arange(17.0)
    unimodal = torch.exp(-0.5 * ((bins - 6) / 1.2) ** 2)
    bimodal = torch.exp(-0.5 * ((bins - 4) / 1.0) ** 2) + 0.6 * torch.exp(-0.5 * ((bins - 12) / 1.0) ** 2)
    probs = torch.stack((unimodal / unimodal.sum(), bimodal / bimodal.sum()))
    stats = peak_statistics(probs)
    assert stats.num_modes.tolist() == [1, 2]
    assert stats.second_peak_ratio[0] == 0 and math.isnan(stats.second_peak_position[0])
    assert stats.second_peak_ratio[1] == pytest.approx(0.6, abs=0.01)
    assert stats.second_peak_position[1] == 12 and stats.peak_position.tolist() == [6, 4]


def test_small_bumps_and_plateaus_are_not_modes():
    probs = torch.tensor([[0.0, 0.5, 0.5, 0.0, 0.02, 0.0, 0.0]])
    stats = peak_statistics(probs / probs.sum(), min_ratio=0.1)
    assert stats.num_modes.item() == 1
    with pytest.raises(ValueError, match="min_ratio"):
        peak_statistics(probs, min_ratio=0.0)


def test_two_equal_peaks_are_reported_at_different_bins():
    probs = torch.zeros(1, 17)
    probs[0, 3] = probs[0, 12] = 0.5
    stats = peak_statistics(probs)
    assert stats.num_modes.item() == 2 and stats.second_peak_ratio.item() == 1.0
    assert {stats.peak_position.item(), stats.second_peak_position.item()} == {3.0, 12.0}
