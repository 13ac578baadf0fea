"""Localization distillation in the model layer: the VLR, the teacher kept out of the student, the LD terms,
images without annotations."""

import copy

import pytest
import torch
from torchvision.ops import box_iou, distance_box_iou

from gfocal.models import gfl_nano
from gfocal.models.assigner.atss import atss_candidates
from gfocal.models.distillation import (
    DistillationSettings,
    DistillingDetector,
    _renormalisation,
    check_distillable,
    valuable_localization_region,
)
from gfocal.models.grid import location_grid
from gfocal.models.targets import pad_targets
from gfocal.ops import square_anchors

SIZE = 64


def tiny(**overrides):
    torch.manual_seed(overrides.pop("seed", 0))
    return gfl_nano(num_classes=2, min_size=SIZE, max_size=SIZE, **overrides)


def batch(unlabelled=False):
    generator = torch.Generator().manual_seed(0)
    images = [torch.randint(0, 255, (3, SIZE, SIZE), dtype=torch.uint8, generator=generator) for _ in range(3)]
    targets = [
        {"boxes": torch.tensor([[5.0, 5.0, 40.0, 50.0]]), "labels": torch.tensor([1])},
        {"boxes": torch.tensor([[10.0, 20.0, 60.0, 60.0], [0.0, 0.0, 20.0, 20.0]]), "labels": torch.tensor([0, 1])},
        {"boxes": torch.tensor([[30.0, 12.0, 56.0, 40.0]]), "labels": torch.tensor([0])},
    ]
    if unlabelled:
        targets[2] = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long), "unlabelled": True}
    return images, targets


def test_the_vlr_is_the_diou_ring_below_the_atss_threshold_outside_the_positives():
    grid = location_grid([(8, 8), (4, 4), (2, 2)], (8, 16, 32), 0.0, torch.device("cpu"))
    gt = pad_targets(
        [{"boxes": torch.tensor([[8.0, 10.0, 44.0, 50.0]]), "labels": torch.tensor([0])}], grid.points.device
    )
    valid = torch.ones(1, grid.points.shape[0], dtype=torch.bool)
    positive = torch.zeros_like(valid)
    positive[0, :3] = True
    vlr, iou = valuable_localization_region(grid, gt, valid, positive, alpha=0.25)
    anchors = square_anchors(grid.points, grid.strides, 8.0)
    diou = distance_box_iou(anchors, gt.boxes[0])[:, 0]
    threshold = atss_candidates(grid, gt.boxes).threshold[0, 0]
    expected = (diou >= 0.25 * threshold) & (diou < threshold)
    expected[:3] = False
    assert expected.any() and torch.equal(vlr[0], expected)
    torch.testing.assert_close(iou[0], torch.where(expected, box_iou(anchors, gt.boxes[0])[:, 0], 0.0))
    empty = pad_targets([{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}], grid.points.device)
    assert not valuable_localization_region(grid, empty, valid, positive)[0].any()


def test_the_teacher_is_not_part_of_the_student_and_stays_in_eval_mode():
    student, teacher = tiny(), tiny(seed=1, backbone_width=16, reg_max=8)
    model = DistillingDetector(student, teacher).train()
    assert set(model.state_dict()) == {f"student.{k}" for k in student.state_dict()}
    assert len(list(model.parameters())) == len(list(student.parameters()))
    assert not teacher.training and student.training
    losses = model(*batch())
    assert {"loss_qfl", "loss_bbox", "loss_dfl", "loss_ld", "loss_ld_vlr"} <= set(losses)
    sum(losses.values()).backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert student.head.box_out.weight.grad.abs().sum() > 0


def test_a_teacher_equal_to_the_student_teaches_nothing():
    student = tiny()
    model = DistillingDetector(student, copy.deepcopy(student), DistillationSettings(cls_weight=1.0)).train()
    student.backbone.eval()  # the teacher's BatchNorm uses its running statistics: so must the student's here
    losses = model(*batch())
    for name in ("loss_ld", "loss_ld_vlr"):
        assert losses[name].abs() < 1e-5, name
    # The soft class targets are the student's own scores: QFL's minimum, not zero, but its gradient is.
    (gradient,) = torch.autograd.grad(losses["loss_ld_cls"], student.head.cls_out.bias)
    assert gradient.abs().max() < 1e-5


def test_the_weights_switch_the_terms():
    images, targets = batch()
    off = DistillingDetector(tiny(), tiny(seed=1), DistillationSettings(vlr_weight=0.0)).train()(images, targets)
    assert "loss_ld_vlr" not in off and "loss_ld_cls" not in off
    double = DistillingDetector(tiny(), tiny(seed=1), DistillationSettings(weight=0.5)).train()(images, targets)
    torch.testing.assert_close(double["loss_ld"], 2 * off["loss_ld"])


def test_an_unlabelled_image_takes_no_gfl_loss_and_distils_around_the_teachers_detections():
    images, targets = batch(unlabelled=True)
    student = tiny()
    nothing_found = DistillationSettings(pseudo_score=1.0)  # no teacher detection passes: no region there
    model = DistillingDetector(student, tiny(seed=1), nothing_found).train()
    student.backbone.eval()  # batch statistics would let the third image change the others' outputs
    with_it, without = model(images, targets), model(images[:2], targets[:2])
    for name in ("loss_qfl", "loss_bbox", "loss_dfl", "loss_ld", "loss_ld_vlr"):
        torch.testing.assert_close(with_it[name], without[name], msg=name)
    # A teacher that finds the boxes the image holds: the region around them distils.
    teacher = tiny(seed=1)
    with torch.no_grad():
        teacher.head.cls_out.bias.fill_(5.0)  # every location scores ~1: detections everywhere, NMS keeps some
    found = DistillingDetector(student, teacher).train()
    student.backbone.eval()
    losses = found(images, targets)
    assert student.last_stats["pseudo_boxes"] > 0
    assert losses["loss_ld_vlr"] > without["loss_ld_vlr"]


def test_a_teacher_normalising_otherwise_sees_the_image_as_it_would_itself():
    student = tiny()
    teacher = tiny(image_mean=(0.5, 0.5, 0.5), image_std=(0.25, 0.5, 1.0))
    scale, shift = _renormalisation(student.config, teacher.config)
    image = torch.rand(1, 3, 4, 4)
    as_student = (image - torch.tensor(student.config.image_mean).view(1, 3, 1, 1)) / torch.tensor(
        student.config.image_std
    ).view(1, 3, 1, 1)
    as_teacher = (image - 0.5) / torch.tensor([0.25, 0.5, 1.0]).view(1, 3, 1, 1)
    torch.testing.assert_close(as_student * scale + shift, as_teacher)


def test_a_teacher_that_cannot_teach_is_refused_saying_why():
    with pytest.raises(ValueError, match="same locations"):
        check_distillable(tiny().config, tiny().config.replace(strides=(8, 16, 32, 64)))
    with pytest.raises(ValueError, match="box='dirac'"):
        check_distillable(tiny().config, tiny().config.replace(box="dirac"))
