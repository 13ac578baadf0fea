"""TOOD's task-aligned assigner on hand-built cases with known answers, and in a training step.

The grid is one level of 4x4 locations, stride 8, points at (4 + 8i, 4 + 8j); predictions are written
per location, so each case says which location predicts what.
"""

import pytest
import torch

from gfocal.models import ModelConfig, build_detector, gfl_nano
from gfocal.models.assigner import AssignerInputs, PaddedTargets, Predictions
from gfocal.models.assigner.task_aligned import TaskAlignedAssigner, task_aligned_assign
from gfocal.models.components import build_assigner
from gfocal.models.criterion import GFLCriterion
from gfocal.models.grid import location_grid
from gfocal.models.head import HeadOutputs
from gfocal.ops import aligned_box_iou, quality_focal_loss

GRID = location_grid([(4, 4)], (8,), 0.5, torch.device("cpu"))
NUM_CLASSES = 3


def loc(col, row):
    return row * 4 + col


def gt(boxes, labels):
    """One image's padded ground truth."""
    return PaddedTargets(
        torch.tensor([boxes], dtype=torch.float32),
        torch.tensor([labels]),
        torch.ones(1, len(boxes), dtype=torch.bool),
    )


def predictions(entries):
    """Scores 0 and boxes far away everywhere, except ``{location: (class, score, box)}``."""
    scores = torch.zeros(1, 16, NUM_CLASSES)
    boxes = torch.tensor([100.0, 100.0, 101.0, 101.0]).repeat(1, 16, 1)
    for location, (label, score, box) in entries.items():
        scores[0, location, label] = score
        boxes[0, location] = torch.tensor(box)
    return Predictions(scores, boxes)


BOX = [0.0, 0.0, 16.0, 16.0]  # holds the points of locations (0, 0), (1, 0), (0, 1), (1, 1)
HALF = [0.0, 0.0, 16.0, 8.0]  # IoU 0.5 with BOX


def test_positives_are_the_top_k_by_alignment_whose_point_is_inside():
    preds = predictions({
        loc(0, 0): (1, 0.5, BOX),  # t = 0.5 * 1**6
        loc(1, 0): (1, 1.0, HALF),  # t = 0.5**6
        loc(3, 3): (1, 1.0, BOX),  # t = 1, the best, but its point (28, 28) is outside the box
        loc(0, 1): (0, 1.0, BOX),  # the wrong class: t = 0
    })  # fmt: skip
    result = task_aligned_assign(GRID, gt([BOX], [1]), preds, topk=3)
    assert result.positive[0].nonzero().flatten().tolist() == [loc(0, 0), loc(1, 0)]
    assert (result.gt_index[0, result.positive[0]] == 0).all()
    torch.testing.assert_close(result.metric[0, [loc(0, 0), loc(1, 0)]], torch.tensor([0.5, 0.5**6]))
    # t / max t * max IoU: the best-aligned location is trained towards the best IoU (1 here).
    torch.testing.assert_close(result.soft_target[0, [loc(0, 0), loc(1, 0)]], torch.tensor([1.0, 0.5**5]))
    assert result.metric[0, ~result.positive[0]].eq(0).all() and result.soft_target[0, ~result.positive[0]].eq(0).all()


def test_top_k_is_taken_before_the_inside_test_as_mmdetection():
    """With topk=1 the only candidate is the outside location: no positive at all."""
    preds = predictions({loc(0, 0): (1, 0.5, BOX), loc(3, 3): (1, 1.0, BOX)})
    assert not task_aligned_assign(GRID, gt([BOX], [1]), preds, topk=1).positive.any()


def test_a_location_claimed_twice_goes_to_the_box_its_prediction_overlaps_most():
    other = [0.0, 0.0, 16.0, 12.0]  # holds the same points; IoU 0.75 with BOX
    preds = predictions({loc(0, 0): (0, 0.9, other), loc(1, 1): (0, 0.9, BOX)})
    result = task_aligned_assign(GRID, gt([BOX, other], [0, 0]), preds, topk=2)
    assert result.gt_index[0, loc(0, 0)] == 1 and result.gt_index[0, loc(1, 1)] == 0
    torch.testing.assert_close(result.metric[0, loc(0, 0)], torch.tensor(0.9))


def test_the_soft_target_scales_by_the_boxes_best_iou():
    preds = predictions({loc(0, 0): (2, 1.0, HALF), loc(1, 1): (2, 0.5, HALF)})
    result = task_aligned_assign(GRID, gt([BOX], [2]), preds)
    torch.testing.assert_close(result.soft_target[0, [loc(0, 0), loc(1, 1)]], torch.tensor([0.5, 0.25]))


def test_invalid_locations_and_padded_slots_are_never_positive():
    preds = predictions({loc(0, 0): (1, 0.5, BOX), loc(1, 0): (1, 1.0, HALF)})
    valid = torch.ones(1, 16, dtype=torch.bool)
    valid[0, loc(0, 0)] = False
    result = task_aligned_assign(GRID, gt([BOX], [1]), preds, valid=valid)
    assert result.positive[0].nonzero().flatten().tolist() == [loc(1, 0)]
    padded = gt([BOX], [1])._replace(valid=torch.zeros(1, 1, dtype=torch.bool))
    assert not task_aligned_assign(GRID, padded, preds).positive.any()


def test_no_ground_truth_gives_no_positive_and_zero_metrics():
    empty = PaddedTargets(
        torch.zeros(2, 0, 4), torch.zeros(2, 0, dtype=torch.long), torch.zeros(2, 0, dtype=torch.bool)
    )
    preds = Predictions(torch.rand(2, 16, NUM_CLASSES), torch.rand(2, 16, 4))
    result = task_aligned_assign(GRID, empty, preds)
    assert not result.positive.any() and (result.gt_index == -1).all()
    assert result.metric.shape == result.soft_target.shape == (2, 16) and not result.soft_target.any()


def test_a_batch_assigns_as_its_images_one_by_one_and_reads_detached_float32():
    generator = torch.Generator().manual_seed(0)
    boxes = [[[0.0, 0.0, 20.0, 24.0], [8.0, 4.0, 30.0, 30.0]], [[2.0, 10.0, 28.0, 31.0]]]
    corners = torch.rand(2, 16, 2, generator=generator) * 16
    scores = torch.rand(2, 16, NUM_CLASSES, generator=generator, dtype=torch.float64).requires_grad_()
    preds = Predictions(scores, torch.cat((corners, corners + 14), -1).requires_grad_())
    batch = PaddedTargets(
        torch.tensor([boxes[0], boxes[1] + [[0.0] * 4]]),
        torch.tensor([[0, 2], [1, 0]]),
        torch.tensor([[True, True], [True, False]]),
    )
    result = TaskAlignedAssigner(topk=4)(AssignerInputs(GRID, batch, predictions=preds))
    assert result.positive.any() and result.soft_target.dtype == torch.float32
    assert not result.metric.requires_grad and not result.soft_target.requires_grad
    for image, count in ((0, 2), (1, 1)):
        alone = PaddedTargets(batch.boxes[image : image + 1, :count], batch.labels[image : image + 1, :count],
                              batch.valid[image : image + 1, :count])  # fmt: skip
        single = task_aligned_assign(
            GRID, alone, Predictions(scores[image : image + 1], preds.boxes[image : image + 1]), 4
        )
        assert torch.equal(single.gt_index[0], result.gt_index[image])
        torch.testing.assert_close(single.soft_target[0], result.soft_target[image])


def test_the_assigner_refuses_to_run_without_predictions():
    with pytest.raises(ValueError, match="predictions"):
        TaskAlignedAssigner()(AssignerInputs(GRID, gt([BOX], [1])))


def test_config_names_the_assigner_and_alignment_needs_soft_targets():
    assigner = build_assigner(ModelConfig(num_classes=2, assigner="task_aligned", tal_topk=7, tal_beta=4.0))
    assert assigner == TaskAlignedAssigner(7, 1.0, 4.0)
    with pytest.raises(ValueError, match="soft targets"):
        build_assigner(ModelConfig(num_classes=2, quality_label="alignment"))
    with pytest.raises(ValueError, match="tal_topk"):
        ModelConfig(num_classes=2, tal_topk=0)


@pytest.mark.parametrize("quality_label", ["iou", "alignment"])
def test_a_task_aligned_nano_model_trains_towards_aligned_predictions(quality_label):
    """The loss is finite but not a measure of progress here: the positives are chosen by the predictions,
    first the few that already fit (low loss), then more and harder ones. What must rise is the alignment
    of the positives' predictions with their boxes, the mean soft target t / max t * max IoU."""
    torch.manual_seed(0)
    model = gfl_nano(2, assigner="task_aligned", quality_label=quality_label, min_size=96, max_size=96).train()
    images = [torch.rand(3, 96, 96), torch.rand(3, 80, 96)]
    targets = [
        {"boxes": torch.tensor([[8.0, 10.0, 60.0, 70.0]]), "labels": torch.tensor([1])},
        {"boxes": torch.tensor([[30.0, 20.0, 90.0, 70.0], [0.0, 0.0, 24.0, 30.0]]), "labels": torch.tensor([0, 1])},
    ]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    alignment = []
    for _ in range(16):
        losses = model(images, targets)
        total = sum(losses.values())
        assert torch.isfinite(total) and model.last_stats["num_pos"] > 0
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        alignment.append(model.last_stats["mean_soft_target"])
    positives = model.last_targets.positives
    assert positives.soft_target is not None and ((positives.soft_target > 0) & (positives.soft_target <= 1)).all()
    assert sum(alignment[-3:]) > 1.5 * sum(alignment[:3])


def test_the_analysis_assignment_of_a_task_aligned_model_needs_its_predictions():
    torch.manual_seed(0)
    model = build_detector(ModelConfig(num_classes=2, backbone="resnet18", fpn_channels=32, feat_channels=32,
                                       norm_groups=8, stacked_convs=1, assigner="task_aligned", min_size=64,
                                       max_size=64)).eval()  # fmt: skip
    targets = [{"boxes": torch.tensor([[4.0, 4.0, 40.0, 50.0]]), "labels": torch.tensor([1])}]
    with torch.no_grad():
        batch, scaled = model.transform([torch.rand(3, 64, 64)], targets)
        scored = model.scored_outputs(batch.tensors)
    with pytest.raises(ValueError, match="predictions"):
        model.assign(scored.grid, scaled, None)
    assert model.assign(scored.grid, scaled, None, scored).positives.soft_target is not None


@pytest.mark.parametrize("quality_label", ["iou", "alignment"])
def test_the_qfl_target_of_a_positive_is_its_iou_or_its_soft_target(quality_label):
    config = ModelConfig(num_classes=NUM_CLASSES, assigner="task_aligned", quality_label=quality_label)
    criterion = GFLCriterion.from_config(config)
    generator = torch.Generator().manual_seed(1)
    outputs = HeadOutputs(
        torch.randn(1, 16, NUM_CLASSES, generator=generator),
        torch.randn(1, 16, 4 * config.bins, generator=generator),
        None,
    )
    targets = [{"boxes": torch.tensor([[2.0, 3.0, 20.0, 26.0]]), "labels": torch.tensor([2])}]
    losses, _ = criterion(outputs, GRID, targets)
    positives = criterion.last_targets.positives
    assert len(positives.label) > 0
    boxes = criterion.box_coding.decode(positives.gather(outputs.box_outputs), positives.point, positives.stride)
    quality = aligned_box_iou(boxes, positives.box) if quality_label == "iou" else positives.soft_target
    labels = torch.full((16,), NUM_CLASSES)
    labels[positives.location] = positives.label
    scores = torch.zeros(16)
    scores[positives.location] = quality
    expected = quality_focal_loss(outputs.cls_logits[0], (labels, scores), avg_factor=float(len(positives.label)))
    torch.testing.assert_close(losses["loss_qfl"], expected)
