"""Post-processing on hand-built scores and boxes: the test-time settings of PAPER.md, pinned.

Score threshold 0.05, the top 1000 candidates per level, class-aware NMS at IoU 0.6, 100 per image.
Boxes are Dirac outputs (stride-unit distances from each location's point), so each test places
exactly the boxes it means.
"""

import pytest
import torch
from torchvision.ops import box_iou

from gfocal.models import ModelConfig
from gfocal.models.box_coding import DiracBoxes
from gfocal.models.postprocess import postprocess_image
from support.placed import NUM_CLASSES, detect, grid_of, outputs

CONFIG = ModelConfig(num_classes=NUM_CLASSES, box="dirac")


def test_the_paper_test_settings_are_the_defaults():
    config = ModelConfig(num_classes=1)
    assert (config.score_threshold, config.pre_nms_top_k, config.nms_iou_threshold, config.max_detections) == (
        0.05,
        1000,
        0.6,
        100,
    )


def test_same_class_overlap_above_the_nms_threshold_is_kept_once_different_classes_both():
    grid = grid_of((8, 8))
    first, shifted = [20.0, 20.0, 36.0, 36.0], [20.0 + 3.39, 20.0, 36.0 + 3.39, 36.0]  # IoU 0.65
    loose = [20.0 + 4.645, 20.0, 36.0 + 4.645, 36.0]  # IoU 0.55, below the threshold
    assert box_iou(torch.tensor([first]), torch.tensor([shifted, loose])).squeeze(0).tolist() == pytest.approx(
        [0.65, 0.55], abs=2e-3
    )
    same = detect(CONFIG, grid, [(27, first, 0, 0.9), (28, shifted, 0, 0.8)])
    assert same["scores"].tolist() == pytest.approx([0.9])
    torch.testing.assert_close(same["boxes"], torch.tensor([first]))
    other_class = detect(CONFIG, grid, [(27, first, 0, 0.9), (28, shifted, 1, 0.8)])
    assert other_class["labels"].tolist() == [0, 1]
    below = detect(CONFIG, grid, [(27, first, 0, 0.9), (28, loose, 0, 0.8)])
    assert below["scores"].tolist() == pytest.approx([0.9, 0.8])


def test_scores_at_or_below_the_threshold_are_dropped():
    grid = grid_of((8, 8))
    result = detect(CONFIG, grid, [(9, [0.0, 0.0, 16.0, 16.0], 0, 0.049), (45, [32.0, 32.0, 48.0, 48.0], 1, 0.051)])
    assert result["scores"].tolist() == pytest.approx([0.051])
    assert result["labels"].tolist() == [1]


def small_boxes(grid, locations, scores, label=0):
    """A 4 x 4 px box around each location's point (no two of a level overlap)."""
    return [
        (
            int(location),
            (grid.points[location].repeat(2) + torch.tensor([-2.0, -2.0, 2.0, 2.0])).tolist(),
            label,
            float(score),
        )
        for location, score in zip(locations, scores)
    ]


def test_at_most_max_detections_the_best_scored():
    grid = grid_of((16, 16))
    scores = torch.linspace(0.2, 0.9, 150)
    result = detect(CONFIG, grid, small_boxes(grid, torch.arange(150) + 1, scores))
    assert len(result["scores"]) == 100
    torch.testing.assert_close(result["scores"], scores.flip(0)[:100])


def test_more_than_pre_nms_top_k_on_a_level_keeps_its_top_k_and_other_levels_their_own():
    grid = grid_of((40, 40), (20, 20))  # 1600 and 400 locations
    level_0 = small_boxes(grid, torch.arange(1200) + 41, torch.linspace(0.1, 0.9, 1200))
    # Level 1's points coincide with some of level 0's: another class, so NMS keeps both.
    level_1 = small_boxes(grid, torch.arange(300) + 1600 + 21, torch.linspace(0.06, 0.085, 300), label=1)
    config = CONFIG.replace(max_detections=10_000)  # see every candidate that survives
    result = detect(config, grid, level_0 + level_1)
    scores = result["scores"]
    # Level 0 keeps its best 1000 (its 200 lowest go, though above every level-1 score); level 1 keeps all.
    assert len(scores) == 1300
    assert (scores >= 0.09).sum() == 1000 and scores[scores >= 0.09].min() > level_0[199][3]
    assert (scores < 0.09).sum() == 300


def test_a_box_the_clipping_empties_is_dropped_as_mmdetection_does():
    """Locations beyond the image (the padding of a batch) decode too; a box wholly beyond the image
    clips to zero width and is no detection (mmdetection's min_bbox_size=0); one reaching into it stays."""
    grid = grid_of((8, 8))  # points every 8 px from 0 to 56: a 64 x 64 batch
    placed = [
        (9, [2.0, 2.0, 14.0, 14.0], 0, 0.5),  # point (8, 8), inside the image
        (23, [30.0, 10.0, 62.0, 22.0], 1, 0.7),  # point (56, 16), beyond it, the box reaching into it
        (63, [50.0, 50.0, 62.0, 62.0], 0, 0.9),  # point (56, 56): clipped to the point (40, 40)
        (62, [44.0, 20.0, 52.0, 62.0], 1, 0.8),  # point (48, 56): clipped to zero width at x = 40
    ]
    scores, boxes = outputs(grid, placed)
    result = postprocess_image(CONFIG, DiracBoxes(), scores, None, boxes, grid, (40, 40))
    assert result["scores"].tolist() == pytest.approx([0.7, 0.5])
    torch.testing.assert_close(result["boxes"], torch.tensor([[30.0, 10.0, 40.0, 22.0], [2.0, 2.0, 14.0, 14.0]]))
