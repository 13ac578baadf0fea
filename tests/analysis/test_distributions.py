"""Per-edge statistics through the public path: modes, pixel positions, the score, records."""

import math

import pytest
import torch

from gfocal.analysis import edge_statistics, to_records
from gfocal.analysis.distributions import ambiguity_score, annotation_statistics, bin_positions, distribution_statistics

BINS = 17


def detection(probs, boxes=None, bin_size=8.0):
    """A detection dict as the model returns it, for K boxes with the given [K, 4, B] distributions."""
    probs = torch.as_tensor(probs, dtype=torch.float32)
    k = probs.shape[0]
    boxes = torch.tensor([[20.0, 30.0, 120.0, 90.0]]).expand(k, 4) if boxes is None else boxes
    return {"boxes": boxes, "box_distributions": probs, "bin_size": torch.full((k, 4), bin_size)}


def peaked(*peaks):
    """A distribution over BINS bins with mass ``weight`` at each ``(bin, weight)``."""
    p = torch.full((BINS,), 1e-4)
    for position, weight in peaks:
        p[position] += weight
    return p / p.sum()


def test_bimodal_edge_has_two_modes_and_unimodal_one():
    unimodal, bimodal = peaked((5, 1.0)), peaked((3, 0.6), (10, 0.4))
    stats = edge_statistics(detection(torch.stack((unimodal, bimodal, unimodal, unimodal))[None]))
    assert stats["num_modes"].tolist() == [[1, 2, 1, 1]]
    assert stats["second_peak_ratio"][0, 1] == pytest.approx(0.4 / 0.6, rel=1e-3)
    assert math.isnan(stats["second_peak_position"][0, 0])
    assert stats["focus"][0, 0] > 0.99 and stats["focus"][0, 1] < 0.61


def test_two_neighbouring_bins_are_one_mode():
    # DFL trains a sharp edge to split its mass over the two bins around it: one mode, focus 1.
    stats = edge_statistics(detection(peaked((4, 0.3), (5, 0.7)).expand(1, 4, BINS)))
    assert stats["num_modes"].tolist() == [[1, 1, 1, 1]]
    assert stats["ambiguity"].item() == pytest.approx(0.0, abs=1e-2)


def test_peak_positions_are_image_coordinates():
    # Left edge: expected distance 5 bins at x=20 -> the point is at 20 + 5*8 = 60; bin 10 lies at 60 - 80 = -20.
    left = peaked((3, 0.5), (7, 0.5 + 1e-3))  # expectation 5 (unequal peaks: an exact tie is ops' business)
    right = peaked((2, 0.5 + 1e-3), (6, 0.5))  # expectation 4; point at 120 - 32 = 88; bin 6 lies at 88 + 48 = 136
    probs = torch.stack((left, peaked((5, 1.0)), right, peaked((5, 1.0))))[None]
    stats = edge_statistics(detection(probs))
    positions = bin_positions(probs, torch.tensor([[20.0, 30.0, 120.0, 90.0]]), torch.full((1, 4), 8.0))
    assert positions[0, 0, 5].item() == pytest.approx(20.0, abs=0.1)
    assert sorted([stats["peak_position"][0, 0].item(), stats["second_peak_position"][0, 0].item()]) == pytest.approx(
        [4.0, 36.0], abs=0.2
    )
    assert sorted([stats["peak_position"][0, 2].item(), stats["second_peak_position"][0, 2].item()]) == pytest.approx(
        [104.0, 136.0], abs=0.2
    )
    assert stats["std"][0, 0].item() == pytest.approx(2.0 * 8.0, rel=1e-2)


def test_ambiguity_is_the_mean_of_the_two_least_focused_edges():
    focus = torch.tensor([[1.0, 0.2, 0.6, 1.0], [1.0, 1.0, 1.0, 1.0]])
    assert ambiguity_score(focus).tolist() == pytest.approx([0.6, 0.0])


def test_annotation_at_second_peak_and_its_surprise():
    probs = torch.stack((peaked((3, 0.6), (10, 0.4)),) * 4)[None]  # [1, 4, B]
    annotated = torch.tensor([[10.0, 3.0, 6.0, 3.2]])
    boxes = torch.zeros(1, 4)
    stats = annotation_statistics(probs, annotated, torch.ones(1, 4), boxes)
    assert stats["annotated_at_second_peak"].tolist() == [[True, False, False, False]]
    # Label between the peaks (bin 6) is far less likely than at the highest peak.
    assert stats["annotated_nll"][0, 2] > stats["annotated_nll"][0, 1] + 3
    assert stats["disagreement"].item() == pytest.approx(stats["annotated_nll"].max().item())


def test_records_are_flat_plain_and_nan_free():
    probs = torch.stack((peaked((3, 0.6), (10, 0.4)), peaked((5, 1.0)), peaked((5, 1.0)), peaked((5, 1.0))))[None]
    det = detection(probs.expand(2, 4, BINS))
    records = to_records(edge_statistics(det), {"boxes": det["boxes"], "scores": torch.tensor([0.9, 0.5])})
    assert len(records) == 2 and records[1]["scores"] == pytest.approx(0.5)
    assert {"x0", "left_std", "bottom_num_modes", "ambiguity", "top_second_peak_position"} <= set(records[0])
    assert records[0]["top_second_peak_position"] is None
    assert isinstance(records[0]["left_num_modes"], int)


def test_empty_detections_and_missing_keys():
    stats = distribution_statistics(torch.zeros(0, 4, BINS), torch.zeros(0, 4), torch.zeros(0, 4))
    assert stats["ambiguity"].shape == (0,) and to_records(stats) == []
    with pytest.raises(KeyError, match="return_distributions"):
        edge_statistics({"boxes": torch.zeros(0, 4)})


def test_model_detections_go_through_edge_statistics():
    from gfocal.models import gfl_small

    torch.manual_seed(0)
    model = gfl_small(2, min_size=64, max_size=64, score_threshold=0.0, max_detections=5).eval()
    with torch.no_grad():
        (out,) = model([torch.rand(3, 48, 80)], return_distributions=True)
    stats = edge_statistics(out)
    assert stats["std"].shape == (len(out["boxes"]), 4)
    # The pixel std agrees with the model's own edge_std.
    torch.testing.assert_close(stats["std"], out["edge_std"], rtol=1e-4, atol=1e-4)
