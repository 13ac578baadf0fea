"""The anchor-based ATSS baseline (``box="anchor_delta"``, ``classification="focal"``) equals mmdetection
3.3's ``ATSSHead``: training losses and gradients (``loss_by_feat``) and detections (``predict_by_feat``).

The batch is the GFL training-parity batch (``test_mmdet_training_parity.py``): images of different
sizes zero-padded together, tiny and border boxes, an image without boxes. Both sides see the same
class logits, box deltas and centerness logits at every level.

The same known difference as GFL's, pinned here: mmdetection's Focal Loss and centerness normaliser
counts each image's positives as at least 1, gfocal the batch's positives; theirs is rescaled.
"""

import pytest
import torch
from test_mmdet_training_parity import (
    BATCH_SHAPE,
    BOXES,
    IMAGE_SIZES,
    LABELS,
    NUM_CLASSES,
    STRIDES,
    build_mmdet_head,
    mmdet_ground_truth,
    to_levels,
)

from gfocal.models import ModelConfig
from gfocal.models.assigner import atss_assign
from gfocal.models.components import build_box_coding
from gfocal.models.criterion import GFLCriterion
from gfocal.models.grid import location_grid, valid_locations
from gfocal.models.head import HeadOutputs
from gfocal.models.postprocess import postprocess_image
from gfocal.models.quality import SeparateCenterness
from gfocal.models.targets import pad_targets

pytestmark = pytest.mark.mmdet

CONFIG = ModelConfig(num_classes=NUM_CLASSES, strides=STRIDES, classification="focal", box="anchor_delta")


def mmdet_atss_head():
    """mmdetection's ATSS head with the settings of its ``atss_r50_fpn_1x_coco`` config."""
    head = build_mmdet_head(
        type="ATSSHead",
        bbox_coder=dict(type="DeltaXYWHBBoxCoder", target_means=[0.0] * 4, target_stds=[0.1, 0.1, 0.2, 0.2]),
        loss_cls=dict(type="FocalLoss", use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type="GIoULoss", loss_weight=2.0),
        loss_centerness=dict(type="CrossEntropyLoss", use_sigmoid=True, loss_weight=1.0),
        test_cfg=dict(nms_pre=1000, min_bbox_size=0, score_thr=0.05, nms=dict(type="nms", iou_threshold=0.6)),
    )
    head.test_cfg.max_per_img = 100
    return head


def head_outputs(num_images, shapes, seed=0):
    """Random class logits (well above the prior), deltas and centerness logits, with gradients."""
    count = sum(h * w for h, w in shapes)
    generator = torch.Generator().manual_seed(seed)
    cls_logits = (torch.randn(num_images, count, NUM_CLASSES, generator=generator) - 1.0).requires_grad_()
    deltas = torch.randn(num_images, count, 4, generator=generator).requires_grad_()
    centerness = torch.randn(num_images, count, 1, generator=generator).requires_grad_()
    return HeadOutputs(cls_logits, deltas, centerness)


def level_shapes(height, width):
    return [(-(-height // s), -(-width // s)) for s in STRIDES]


def batch_grid():
    shapes = level_shapes(*BATCH_SHAPE)
    return shapes, location_grid(shapes, STRIDES, CONFIG.point_offset, torch.device("cpu"))


@pytest.mark.parametrize("num_images", [3, 1], ids=["three-images", "one-image"])
def test_losses_and_gradients_equal_mmdetection_atss_head(num_images):
    shapes, grid = batch_grid()
    outputs = head_outputs(num_images, shapes)
    images = list(zip(BOXES, LABELS))[:num_images]
    targets = [
        {"boxes": torch.tensor(b).reshape(-1, 4), "labels": torch.tensor(labels, dtype=torch.long)}
        for b, labels in images
    ]
    valid = valid_locations(grid, IMAGE_SIZES[:num_images], 32)

    ours, stats = GFLCriterion.from_config(CONFIG)(outputs, grid, targets, valid)
    assert stats["num_pos"] > 0
    losses = mmdet_atss_head().loss_by_feat(*(to_levels(flat, shapes) for flat in outputs), *mmdet_ground_truth(images))
    theirs = {name: sum(values) for name, values in losses.items()}
    gt_boxes, _, gt_valid = pad_targets(targets, torch.device("cpu"))
    positives = atss_assign(grid, gt_boxes, gt_valid, valid=valid).positive.sum(1)  # [N]
    ratio = positives.clamp_min(1).sum() / positives.sum().clamp_min(1)
    theirs["loss_cls"] = theirs["loss_cls"] * ratio
    theirs["loss_centerness"] = theirs["loss_centerness"] * ratio

    for name, their_name in (
        ("loss_focal", "loss_cls"),
        ("loss_bbox", "loss_bbox"),
        ("loss_centerness", "loss_centerness"),
    ):
        assert ours[name] > 0
        torch.testing.assert_close(ours[name], theirs[their_name], rtol=1e-5, atol=1e-6, msg=name)
    our_grads = torch.autograd.grad(sum(ours.values()), list(outputs))
    their_grads = torch.autograd.grad(sum(theirs.values()), list(outputs))
    for name, mine, reference in zip(HeadOutputs._fields, our_grads, their_grads):
        assert reference.abs().sum() > 0
        torch.testing.assert_close(mine, reference, rtol=1e-4, atol=1e-7, msg=name)


@pytest.mark.parametrize("image", range(len(IMAGE_SIZES)))
def test_detections_equal_mmdetection_atss_head(image):
    """One image on its own grid (padded to 32, as single-image inference pads it).

    Not a padded batch: there mmdetection drops the zero-area boxes of locations in another image's
    padding (``min_bbox_size=0`` keeps only w, h > 0), which gfocal's post-processing keeps.
    """
    size = IMAGE_SIZES[image]
    (meta,) = mmdet_ground_truth([([], [])])[1]
    meta = {**meta, "img_shape": size, "pad_shape": tuple(-(-s // 32) * 32 for s in size)}
    shapes = level_shapes(*meta["pad_shape"])
    grid = location_grid(shapes, STRIDES, CONFIG.point_offset, torch.device("cpu"))
    outputs = head_outputs(1, shapes, seed=image + 1)
    with torch.no_grad():
        (expected,) = mmdet_atss_head().predict_by_feat(
            *(to_levels(flat, shapes) for flat in outputs), batch_img_metas=[meta], rescale=False
        )
        scores, factors = SeparateCenterness(32).scores(outputs.cls_logits, outputs.quality_logits)
        box_coding = build_box_coding(CONFIG)
        actual = postprocess_image(CONFIG, box_coding, scores[0], factors[0], outputs.box_outputs[0], grid, size)
    assert len(expected.bboxes) > 10
    assert torch.equal(actual["labels"], expected.labels)
    torch.testing.assert_close(actual["boxes"], expected.bboxes, atol=1e-3, rtol=0)
    torch.testing.assert_close(actual["scores"], expected.scores, atol=1e-5, rtol=1e-5)
