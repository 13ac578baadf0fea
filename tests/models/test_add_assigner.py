"""docs/architecture.md's worked example, "Adding an assigner": a toy assigner that ranks locations by the
network's own predicted boxes is one new file (the class below) and one registration line (the
``monkeypatch.setitem``); a detector naming it trains on a tiny image, and analysis sees its positives."""

from dataclasses import dataclass

import pytest
import torch

from gfocal.models import ModelConfig, build_detector
from gfocal.models.assigner import AssignerInputs, Assignment, Predictions, empty_assignment, points_inside
from gfocal.models.assigner.contract import claim_candidates
from gfocal.models.components import ASSIGNERS
from gfocal.models.grid import valid_locations
from gfocal.models.targets import assign_targets
from gfocal.ops import batched_box_iou


@dataclass(frozen=True)
class TopIoUAssigner:
    """Per ground truth, the ``topk`` locations inside it whose predicted box overlaps it most."""

    topk: int = 4
    needs_predictions = True  # the criterion hands it the detached scores and decoded boxes

    def __call__(self, inputs: AssignerInputs) -> Assignment:
        gt, grid = inputs.gt, inputs.grid
        if gt.boxes.shape[1] == 0:
            return empty_assignment(gt.valid.shape[0], grid.points.shape[0], grid.points.device)
        ious = batched_box_iou(inputs.predictions.boxes, gt.boxes)  # [N, A, M]
        inside = points_inside(grid.points[None, :, None], gt.boxes[:, None]) & gt.valid[:, None]  # [N, A, M]
        if inputs.valid is not None:
            inside &= inputs.valid[..., None]
        ranked = torch.where(inside, ious, -1.0)
        top, candidates = ranked.topk(min(self.topk, ranked.shape[1]), dim=1)  # [N, K, M]
        best_iou, best_gt, positive = claim_candidates(ious, candidates, top >= 0)  # [N, A] each
        metric = torch.where(positive, best_iou, 0.0)
        return Assignment(torch.where(positive, best_gt, -1), positive, metric=metric)


CONFIG = ModelConfig(
    num_classes=2, backbone="resnet18", backbone_width=8, fpn_channels=32, feat_channels=32, stacked_convs=1, norm_groups=8,
    min_size=64, max_size=64, assigner="top_iou",
)  # fmt: skip
TARGETS = [{"boxes": torch.tensor([[8.0, 10.0, 40.0, 52.0], [30.0, 4.0, 60.0, 30.0]]), "labels": torch.tensor([1, 0])}]


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(ASSIGNERS, "top_iou", lambda config: TopIoUAssigner())


def test_a_new_assigner_that_reads_predictions_trains_a_detector(registered):
    torch.manual_seed(0)
    model = build_detector(CONFIG).train()
    assert model.criterion.assigner == TopIoUAssigner()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    image = torch.rand(3, 64, 64)
    for _ in range(2):
        losses = model([image], TARGETS)
        assert set(losses) == {"loss_qfl", "loss_bbox", "loss_dfl"}
        assert all(torch.isfinite(value) and value > 0 for value in losses.values())
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
    positives = model.last_targets.positives
    assert 0 < len(positives.label) <= 2 * 4  # at most top 4 per box
    assert positives.metric is not None and (positives.metric >= 0).all()
    assert torch.equal(positives.label, TARGETS[0]["labels"][positives.gt_index])


def test_the_new_assigner_follows_the_predictions_and_analysis_sees_them(registered):
    torch.manual_seed(0)
    model = build_detector(CONFIG).eval()
    batch, _ = model.transform([torch.rand(3, 64, 64)])
    scored = model.scored_outputs(batch.tensors)
    valid = valid_locations(scored.grid, batch.image_sizes, CONFIG.size_divisible)
    with pytest.raises(ValueError, match="ranks locations by the network's predictions"):
        model.assign(scored.grid, TARGETS, valid)
    analysed = model.assign(scored.grid, TARGETS, valid, scored)
    assert analysed.positives.label.numel() > 0

    # Other predicted boxes, other positives: the assigner reads them (a point's own box fits its box best).
    grid, gt = scored.grid, TARGETS[0]["boxes"]
    boxes = gt[1].expand(1, grid.points.shape[0], 4)  # every location predicts the second box
    scores = torch.full((1, grid.points.shape[0], 2), 0.5)
    moved = assign_targets(grid, TARGETS, model.criterion.assigner, valid, Predictions(scores, boxes))
    assert not torch.equal(moved.assignment.positive, analysed.assignment.positive)
    assert (moved.positives.metric[moved.positives.gt_index == 1] == 1).all()
