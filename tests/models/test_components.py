"""Adding a backbone, an assigner and a quality branch, as docs/architecture.md shows: the components
below are "the new file", each ``monkeypatch.setitem`` is "the registration line", and a detector built
from a config naming them trains and detects."""

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gfocal.models import ModelConfig, WeightsError, build_detector
from gfocal.models.assigner import AssignerInputs, Assignment
from gfocal.models.components import ASSIGNERS, BACKBONES, QUALITY_BRANCHES
from gfocal.models.grid import flatten_locations
from gfocal.models.quality import ClassificationInputs, iou_label
from gfocal.ops import box_to_distance, quality_focal_loss


class TinyBackbone(nn.Module):
    """Two strided convs per level: features at the config's strides, ``fpn_channels`` wide."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.out_channels, self.strides = config.fpn_channels, tuple(config.strides)
        self.levels = nn.ModuleList(
            nn.Conv2d(3, self.out_channels, stride, stride=stride) for stride in self.strides
        )  # one patchify conv per level

    def forward(self, images: Tensor) -> list[Tensor]:
        return [level(images).relu() for level in self.levels]


def inside_smallest_assign(inputs: AssignerInputs) -> Assignment:
    """Each location trains on the smallest ground truth containing its point (FCOS without ranges)."""
    grid, gt_boxes, gt_valid, valid = inputs.grid, inputs.gt.boxes, inputs.gt.valid, inputs.valid
    inside = box_to_distance(grid.points[None, :, None, :], gt_boxes[:, None]).amin(-1) > 0  # [N, A, M]
    inside &= gt_valid[:, None]
    if valid is not None:
        inside &= valid[..., None]
    area = ((gt_boxes[..., 2] - gt_boxes[..., 0]) * (gt_boxes[..., 3] - gt_boxes[..., 1]))[:, None]  # [N, 1, M]
    smallest = torch.where(inside, area, float("inf")).argmin(-1)  # [N, A]
    gt_index = torch.where(inside.any(-1), smallest, -1)
    return Assignment(gt_index, gt_index >= 0)


class PredictedIoU(nn.Conv2d):
    """A quality branch: a 1x1 conv predicting the box's IoU, multiplied into the class scores after
    thresholding; classes trained with QFL against 1, the IoU with BCE."""

    weights_name = "iou_out"
    has_score_factors = True

    def __init__(self, in_channels: int) -> None:
        super().__init__(in_channels, 1, 1)

    def logits(self, reg_features: list[Tensor], box_outputs: Tensor) -> Tensor | None:
        return torch.cat([flatten_locations(self(feature)) for feature in reg_features], dim=1).float()

    def scores(self, cls_logits: Tensor, quality_logits: Tensor | None) -> tuple[Tensor, Tensor | None]:
        return cls_logits.sigmoid(), quality_logits.squeeze(-1).sigmoid()

    def losses(self, inputs: ClassificationInputs) -> tuple[dict[str, Tensor], Tensor]:
        rows, num_classes = inputs.cls_logits.shape
        labels = torch.full((rows,), num_classes, dtype=torch.long)
        labels[inputs.positive] = inputs.labels
        scores = torch.zeros(rows)
        scores[inputs.positive] = 1.0
        qfl = quality_focal_loss(inputs.cls_logits, (labels, scores), weight=inputs.weight, avg_factor=inputs.num_pos)
        iou = iou_label(inputs)
        bce = F.binary_cross_entropy_with_logits(inputs.quality_logits.reshape(-1)[inputs.positive], iou)
        return {"loss_qfl": qfl, "loss_iou": bce}, iou


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(BACKBONES, "tiny", TinyBackbone)
    monkeypatch.setitem(ASSIGNERS, "inside", lambda config: inside_smallest_assign)
    monkeypatch.setitem(QUALITY_BRANCHES, "predicted_iou", lambda config, box_coding: PredictedIoU)


def test_a_new_backbone_assigner_and_quality_branch_train_and_detect(registered, tmp_path):
    config = ModelConfig(
        num_classes=2, backbone="tiny", assigner="inside", classification="predicted_iou", strides=(8, 16),
        fpn_channels=32, feat_channels=32, stacked_convs=1, reg_max=4, min_size=64, max_size=64, score_threshold=0.0,
    )  # fmt: skip
    torch.manual_seed(0)
    model = build_detector(config)
    assert isinstance(model.backbone, TinyBackbone) and isinstance(model.head.quality, PredictedIoU)
    assert {k for k in model.state_dict() if k.startswith("head.iou_out.")} == {
        "head.iou_out.weight",
        "head.iou_out.bias",
    }
    images = [torch.rand(3, 64, 64), torch.rand(3, 64, 48)]
    targets = [
        {"boxes": torch.tensor([[4.0, 8.0, 40.0, 50.0]]), "labels": torch.tensor([1])},
        {"boxes": torch.tensor([[10.0, 10.0, 30.0, 60.0], [0.0, 0.0, 16.0, 16.0]]), "labels": torch.tensor([0, 1])},
    ]
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    model.train()
    losses = model(images, targets)
    assert set(losses) == {"loss_qfl", "loss_iou", "loss_bbox", "loss_dfl"}
    assert all(torch.isfinite(v) for v in losses.values())
    assert model.last_stats["num_pos"] > 0
    sum(losses.values()).backward()
    optimizer.step()
    for prefix in ("backbone.levels.0.", "head.iou_out.", "head.box_out."):
        changed = [not torch.equal(p, before[n]) for n, p in model.named_parameters() if n.startswith(prefix)]
        assert changed and all(changed), prefix

    model.eval()
    with torch.no_grad():
        detections = model(images)
    assert [set(d) for d in detections] == [{"boxes", "scores", "labels"}] * 2
    assert all(len(d["boxes"]) > 0 and (d["scores"] <= 1).all() for d in detections)


def test_unknown_component_names_are_errors_listing_the_known_ones():
    for field, name in (("backbone", "resnet5"), ("assigner", "atsss"), ("box", "gaussian"), ("classification", "x")):
        with pytest.raises(ValueError, match=rf"unknown .*'{name}'; known: "):
            build_detector(ModelConfig(num_classes=1, **{field: name}))


def test_imagenet_weights_are_refused_for_a_backbone_that_cannot_load_them(registered):
    config = ModelConfig(num_classes=1, backbone="tiny", strides=(8,), fpn_channels=32, feat_channels=32)
    with pytest.raises(WeightsError, match=r"'tiny' \(TinyBackbone\) has no ImageNet weights \(no load_imagenet\)"):
        build_detector(config, backbone_weights="IMAGENET1K_V1")
