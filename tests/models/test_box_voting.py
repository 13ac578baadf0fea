"""Box voting after NMS: hand-built candidates whose weighted means are known."""

import math

import pytest
import torch

from gfocal.models import ModelConfig
from gfocal.models.box_coding import DistributionBoxes
from gfocal.models.box_voting import vote_boxes
from gfocal.models.grid import location_grid
from gfocal.models.postprocess import postprocess_image
from support.placed import detect, grid_of

KEPT = [20.0, 20.0, 36.0, 36.0]
SHIFTED = [22.0, 20.0, 38.0, 36.0]  # IoU 14 / 18 with KEPT


def kernel(iou, sigma):
    return math.exp(-((1 - iou) ** 2) / sigma)


def test_score_voting_is_the_score_and_overlap_weighted_mean_of_each_edge():
    candidates = torch.tensor([KEPT, SHIFTED, [100.0, 100.0, 116.0, 116.0]])
    scores = torch.tensor([0.9, 0.6, 0.8])
    labels = torch.tensor([0, 0, 0])
    voted = vote_boxes(candidates[:1], labels[:1], candidates, scores, labels, sigma=0.1)
    w_kept, w_shifted = 0.9, 0.6 * kernel(14 / 18, 0.1)  # the far box does not overlap: no vote
    x1 = (w_kept * 20 + w_shifted * 22) / (w_kept + w_shifted)
    assert voted[0].tolist() == pytest.approx([x1, 20.0, x1 + 16, 36.0], abs=1e-4)


def test_other_classes_do_not_vote_and_the_kernel_width_sets_the_reach():
    candidates = torch.tensor([KEPT, SHIFTED])
    scores = torch.tensor([0.9, 0.9])
    other = vote_boxes(candidates[:1], torch.tensor([0]), candidates, scores, torch.tensor([0, 1]), sigma=0.1)
    torch.testing.assert_close(other, candidates[:1])
    labels = torch.tensor([0, 0])
    narrow = vote_boxes(candidates[:1], labels[:1], candidates, scores, labels, sigma=0.001)
    wide = vote_boxes(candidates[:1], labels[:1], candidates, scores, labels, sigma=10.0)
    assert narrow[0, 0].item() == pytest.approx(20.0, abs=1e-3)  # (1 - 0.78)^2 / 0.001 = 49: no weight
    assert wide[0, 0].item() == pytest.approx(21.0, abs=0.01)  # nearly equal weights: the midpoint


def test_edge_variance_weights_each_edge_on_its_own():
    candidates = torch.tensor([KEPT, SHIFTED])
    scores = torch.tensor([0.5, 0.5])
    labels = torch.tensor([0, 0])
    # The kept box is sure of its right edge, the shifted one of its left edge.
    variance = torch.tensor([[100.0, 1.0, 1.0, 1.0], [1.0, 1.0, 100.0, 1.0]])
    voted = vote_boxes(candidates[:1], labels[:1], candidates, scores, labels, sigma=10.0, edge_variance=variance)
    assert voted[0, 0].item() == pytest.approx(22.0, abs=0.05)  # left edge from the shifted box
    assert voted[0, 2].item() == pytest.approx(36.0, abs=0.05)  # right edge from the kept one


def test_postprocess_votes_only_when_asked_and_keeps_scores_and_order():
    grid = grid_of((8, 8))
    placed = [(27, KEPT, 0, 0.9), (28, SHIFTED, 0, 0.6)]
    plain = detect(ModelConfig(num_classes=2, box="dirac"), grid, placed)
    voted = detect(ModelConfig(num_classes=2, box="dirac", box_voting="score", box_voting_sigma=0.1), grid, placed)
    torch.testing.assert_close(plain["boxes"], torch.tensor([KEPT]))
    assert voted["scores"].tolist() == plain["scores"].tolist()
    assert 20.0 < voted["boxes"][0, 0].item() < 21.0  # pulled towards the suppressed box, by less than half


def test_distribution_voting_reads_the_learned_spread_and_needs_distributions():
    config = ModelConfig(num_classes=1, reg_max=4, box_voting="distribution")
    grid = location_grid([(4, 4)], (8,), 0.0, torch.device("cpu"))
    scores = torch.zeros(16, 1)
    scores[5, 0], scores[6, 0] = 0.9, 0.8
    logits = torch.zeros(16, 4 * 5)  # uniform distributions: equal variance everywhere
    voted = postprocess_image(config, DistributionBoxes(reg_max=4), scores, None, logits, grid, (32, 32))
    assert voted["boxes"].shape == (1, 4)
    with pytest.raises(ValueError, match="needs a distribution head"):
        detect(
            ModelConfig(num_classes=2, box="dirac", box_voting="distribution"), grid_of((8, 8)), [(27, KEPT, 0, 0.9)]
        )


def test_box_voting_options_are_checked():
    with pytest.raises(ValueError, match="box_voting must be one of"):
        ModelConfig(num_classes=1, box_voting="mean")
    with pytest.raises(ValueError, match="box_voting_sigma must be > 0"):
        ModelConfig(num_classes=1, box_voting_sigma=0.0)
