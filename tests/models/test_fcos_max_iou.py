"""FCOS's and RetinaNet's max-IoU assigners on hand-built cases with known answers, the ignored locations'
lack of classification loss, and every registered assigner in a training step."""

import pytest
import torch

from gfocal.models import ModelConfig, build_detector
from gfocal.models.assigner import AssignerInputs
from gfocal.models.assigner.fcos import FCOSAssigner, fcos_assign
from gfocal.models.assigner.max_iou import MaxIoUAssigner, max_iou_assign
from gfocal.models.components import ASSIGNERS, build_assigner
from gfocal.models.criterion import GFLCriterion
from gfocal.models.grid import location_grid
from gfocal.models.head import HeadOutputs
from gfocal.models.targets import pad_targets

ONE = torch.ones(1, 1, dtype=torch.bool)


def two_levels():
    """Level 0: 8x8 at stride 8; level 1: 4x4 at stride 16; points at the cells' centres."""
    return location_grid([(8, 8), (4, 4)], (8, 16), 0.5, torch.device("cpu"))


def locations(grid, mask):
    return [(int(grid.strides[i]), *grid.points[i].tolist()) for i in mask.nonzero().flatten()]


def test_fcos_takes_the_centre_region_of_the_level_whose_range_fits():
    grid = two_levels()
    box = torch.tensor([[[8.0, 8.0, 56.0, 40.0]]])  # centre (32, 24); distances up to 28 px from inside
    result = fcos_assign(grid, box, ONE, range_edges=(32.0,), radius=1.0)
    # Level 0 (largest distance up to 32 px): the points strictly within 8 px of the centre. Level 1 (from
    # 32 px, both ends inclusive as in mmdetection): within 16 px, the two points exactly 32 px from an edge.
    assert locations(grid, result.positive[0]) == [
        (8, 28.0, 20.0), (8, 36.0, 20.0), (8, 28.0, 28.0), (8, 36.0, 28.0), (16, 24.0, 24.0), (16, 40.0, 24.0)
    ]  # fmt: skip
    wide = fcos_assign(grid, box, ONE, range_edges=(1000.0,), radius=2.0)
    assert len(locations(grid, wide.positive[0])) == 16  # +-16 px: four columns and rows of stride 8


def test_fcos_gives_a_location_in_two_boxes_to_the_smaller():
    grid = two_levels()
    boxes = torch.tensor([[[0.0, 0.0, 64.0, 64.0], [16.0, 16.0, 48.0, 48.0]]])
    result = fcos_assign(grid, boxes, torch.ones(1, 2, dtype=torch.bool), range_edges=(1000.0,), radius=4.0)
    centre = int(((grid.points - torch.tensor([28.0, 28.0])).abs().sum(-1) == 0).nonzero())
    assert result.gt_index[0, centre] == 1
    # On level 0 the big box's centre region (+-32 px) holds all 64 points, the small box's 16 of them.
    assert (result.gt_index[0] == 1).sum() == 16 and (result.gt_index[0] == 0).sum() == 48


def test_fcos_needs_one_range_edge_less_than_levels():
    with pytest.raises(ValueError, match="1 edges for 2 levels|4 edges for 2 levels"):
        FCOSAssigner()(_inputs(two_levels(), [[0.0, 0.0, 8.0, 8.0]]))
    with pytest.raises(ValueError, match="increase"):
        FCOSAssigner((128.0, 64.0))


def _inputs(grid, boxes):
    targets = [{"boxes": torch.tensor(boxes), "labels": torch.zeros(len(boxes), dtype=torch.long)}]
    return AssignerInputs(grid, pad_targets(targets, torch.device("cpu")))


def one_anchor_grid():
    """Four locations of stride 8 at x = 0, 8, 16, 24 (y = 0), each with a 16 px anchor (anchor_scale 2)."""
    return location_grid([(1, 4)], (8,), 0.0, torch.device("cpu"))


def test_max_iou_splits_positive_ignored_and_negative_by_the_thresholds():
    grid = one_anchor_grid()  # anchors [-8, -8, 8, 8], [0, -8, 16, 8], [8, ...], [16, ...]
    box = torch.tensor([[[-8.0, -8.0, 8.0, 8.0]]])  # IoUs 1, 1/3, 0, 0
    result = max_iou_assign(grid, box, ONE, pos_iou=0.5, neg_iou=0.3, anchor_scale=2.0)
    assert result.gt_index[0].tolist() == [0, -1, -1, -1]
    assert result.ignored[0].tolist() == [False, True, False, False]


def test_every_box_keeps_its_best_anchors_and_a_box_without_overlap_claims_none():
    grid = one_anchor_grid()
    boxes = torch.tensor([[[20.0, -4.0, 28.0, 4.0], [100.0, 100.0, 110.0, 110.0]]])  # best IoU 0.25; none
    result = max_iou_assign(grid, boxes, torch.ones(1, 2, dtype=torch.bool), anchor_scale=2.0)
    assert result.gt_index[0].tolist() == [-1, -1, -1, 0]  # below pos_iou, yet its best anchor
    stricter = max_iou_assign(grid, boxes, torch.ones(1, 2, dtype=torch.bool), min_pos_iou=0.3, anchor_scale=2.0)
    assert not stricter.positive.any()
    with pytest.raises(ValueError, match="max_iou_neg <= max_iou_pos"):
        MaxIoUAssigner(pos_iou=0.3, neg_iou=0.4)


def test_ignored_locations_have_no_classification_loss():
    config = ModelConfig(num_classes=2, strides=(8,), assigner="max_iou", anchor_scale=2.0, reg_max=4, max_iou_neg=0.3)
    criterion = GFLCriterion.from_config(config)
    grid = one_anchor_grid()
    generator = torch.Generator().manual_seed(0)
    outputs = HeadOutputs(torch.randn(1, 4, 2, generator=generator), torch.randn(1, 4, 20, generator=generator), None)
    targets = [{"boxes": torch.tensor([[-8.0, -8.0, 8.0, 8.0]]), "labels": torch.tensor([1])}]
    losses, _ = criterion(outputs, grid, targets)
    assert criterion.last_targets.assignment.ignored[0].tolist() == [False, True, False, False]  # IoUs 1, 1/3, 0, 0
    shifted = outputs._replace(cls_logits=outputs.cls_logits.clone())
    shifted.cls_logits[0, 1] += 5.0
    torch.testing.assert_close(criterion(shifted, grid, targets)[0]["loss_qfl"], losses["loss_qfl"])
    shifted.cls_logits[0, 2] += 5.0  # a negative: its loss counts
    assert criterion(shifted, grid, targets)[0]["loss_qfl"] > losses["loss_qfl"]


@pytest.mark.parametrize("name", sorted(ASSIGNERS))
def test_every_registered_assigner_trains_a_tiny_detector(name):
    config = ModelConfig(
        num_classes=2, backbone="resnet18", backbone_width=16, fpn_channels=32, feat_channels=32, norm_groups=8,
        stacked_convs=1, reg_max=4, min_size=64, max_size=64, assigner=name,
    )  # fmt: skip
    assert build_assigner(config) == ASSIGNERS[name](config)
    torch.manual_seed(0)
    model = build_detector(config).train()
    images = [torch.rand(3, 64, 64), torch.rand(3, 48, 64)]
    targets = [
        {"boxes": torch.tensor([[4.0, 8.0, 40.0, 50.0]]), "labels": torch.tensor([1])},
        {"boxes": torch.tensor([[10.0, 10.0, 30.0, 46.0], [0.0, 0.0, 16.0, 16.0]]), "labels": torch.tensor([0, 1])},
    ]
    losses = model(images, targets)
    assert all(torch.isfinite(v) for v in losses.values()) and model.last_stats["num_pos"] > 0
    sum(losses.values()).backward()
    assert model.last_targets.positives.label.numel() == round(model.last_stats["num_pos"] * 2)
