"""Localization distillation parity: ``loss_ld`` and its gradients equal mmdetection 3.3's
``LDHead.loss_by_feat`` with ``KnowledgeDistillationKLDivLoss`` (T = 10, weight 0.25).

Both see the same student outputs, the same teacher distributions and the same ground truth, on the
zero-padded three-image batch of the GFL training parity test (boxes tiny, on the border, without width,
an image without any). mmdetection 3.3's LD head distils on the positives only; gfocal's VLR term is its
own (LD's paper and code), so it is off here.
"""

import pytest
import torch
from test_mmdet_training_parity import (
    BATCH_SHAPE,
    BOXES,
    IMAGE_SIZES,
    LABELS,
    NUM_CLASSES,
    REG_MAX,
    STRIDES,
    build_mmdet_head,
    mmdet_ground_truth,
    to_levels,
)

from gfocal.models import ModelConfig
from gfocal.models.criterion import GFLCriterion
from gfocal.models.distillation import DistillationSettings, Region, distillation_losses
from gfocal.models.grid import location_grid, valid_locations
from gfocal.models.head import HeadOutputs

pytestmark = pytest.mark.mmdet


def mmdet_ld_head():
    return build_mmdet_head(
        type="LDHead",
        reg_max=REG_MAX,
        loss_cls=dict(type="QualityFocalLoss", use_sigmoid=True, beta=2.0, loss_weight=1.0),
        loss_dfl=dict(type="DistributionFocalLoss", loss_weight=0.25),
        loss_bbox=dict(type="GIoULoss", loss_weight=2.0),
        loss_ld=dict(type="KnowledgeDistillationKLDivLoss", loss_weight=0.25, T=10),
    )


@pytest.mark.parametrize("num_images", [3, 1], ids=["three-images", "one-image"])
def test_ld_loss_and_gradients_equal_mmdetection(num_images):
    shapes = [(-(-BATCH_SHAPE[0] // s), -(-BATCH_SHAPE[1] // s)) for s in STRIDES]
    grid = location_grid(shapes, STRIDES, 0.0, torch.device("cpu"))
    count = grid.points.shape[0]
    generator = torch.Generator().manual_seed(0)
    cls_logits = (torch.randn(num_images, count, NUM_CLASSES, generator=generator) - 1.0).requires_grad_()
    box_outputs = (2 * torch.randn(num_images, count, 4 * (REG_MAX + 1), generator=generator)).requires_grad_()
    teacher_box = 3 * torch.randn(num_images, count, 4 * (REG_MAX + 1), generator=generator)
    images = list(zip(BOXES, LABELS))[:num_images]
    targets = [
        {"boxes": torch.tensor(b).reshape(-1, 4), "labels": torch.tensor(labels, dtype=torch.long)}
        for b, labels in images
    ]
    valid = valid_locations(grid, IMAGE_SIZES[:num_images], 32)
    criterion = GFLCriterion.from_config(ModelConfig(num_classes=NUM_CLASSES, reg_max=REG_MAX, strides=STRIDES))
    student = HeadOutputs(cls_logits, box_outputs, None)
    criterion(student, grid, targets, valid)
    main = criterion.last_targets
    assert len(main.positives.label) > 0
    region = Region(main, torch.zeros_like(valid), torch.zeros(valid.shape))
    ours = distillation_losses(
        student,
        HeadOutputs(torch.zeros_like(cls_logits), teacher_box, None),
        region,
        cls_logits.detach().sigmoid(),
        None,
        DistillationSettings(vlr_weight=0.0),
    )["loss_ld"]

    theirs = mmdet_ld_head().loss_by_feat(
        to_levels(cls_logits, shapes),
        to_levels(box_outputs, shapes),
        *mmdet_ground_truth(images),
        soft_targets=to_levels(teacher_box, shapes),
    )
    theirs = sum(theirs["loss_ld"])
    assert ours > 0
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    our_grads = torch.autograd.grad(ours, (cls_logits, box_outputs), allow_unused=True)
    their_grads = torch.autograd.grad(theirs, (cls_logits, box_outputs), allow_unused=True)
    assert our_grads[0] is None and their_grads[0] is None  # the weights are detached scores on both sides
    assert their_grads[1].abs().sum() > 0
    torch.testing.assert_close(our_grads[1], their_grads[1], rtol=1e-5, atol=1e-5)
