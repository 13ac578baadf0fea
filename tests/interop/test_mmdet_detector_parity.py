"""The detector variants' losses (and detections, where comparable) equal mmdetection 3.3's heads on the same
outputs and ground truth: ``retinanet`` vs ``RetinaHead`` (L1, smooth L1 and GIoU box losses), ``fcos`` vs
``FCOSHead`` (its ``center-normbbox-centeronreg-giou`` settings) and ``tood`` vs ``TOODHead`` (its losses
after the initial epochs). ATSS (``atss-anchor``) and GFL have theirs in ``test_mmdet_atss_parity.py`` and
``test_mmdet_training_parity.py``; each ``-gfl`` form is GFL's loss on its detector's assignment, and both
halves are checked there and in ``test_mmdet_fcos_retinanet_parity.py`` / ``test_mmdet_task_aligned_parity.py``
(mmdetection's ``GFLHead`` only calls ATSS-style assigners).

The batch is the GFL training-parity batch: images of different sizes zero-padded together, tiny and border
boxes, an image without boxes. Differences kept, and pinned here:

- RetinaNet: mmdetection normalises by each image's positives counted as at least 1 (as its ATSS and GFL),
  gfocal by the batch's; theirs is rescaled. Its max-IoU assigner lets a box without area claim every anchor,
  gfocal's none, so that box is left out (``test_mmdet_fcos_retinanet_parity.py``).
- FCOS: ``FCOSHead`` has no valid flags, so another image's padding trains as background there; gfocal gives
  it no loss, as mmdetection's anchor heads do. The losses are compared with every location valid.
  Its GIoU normaliser (the centerness targets' sum) is floored at 1e-6, gfocal's at 1 (as ATSS's); the
  batch's sum is well above 1.
- TOOD: detections are not compared: ``TOODHead`` does not clip boxes to the image before NMS, gfocal does
  (as every mmdetection head here); its scores are plain sigmoids, the path GFL's detections test.
"""

from types import SimpleNamespace

import pytest
import torch
from test_mmdet_atss_parity import batch_grid, level_shapes
from test_mmdet_fcos_retinanet_parity import mmdet_fcos_head
from test_mmdet_training_parity import (
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
from gfocal.models.components import build_box_coding, build_quality
from gfocal.models.criterion import GFLCriterion
from gfocal.models.grid import location_grid, valid_locations
from gfocal.models.head import HeadOutputs
from gfocal.models.postprocess import postprocess_image
from gfocal.models.variants import VARIANTS

pytestmark = pytest.mark.mmdet

FOCAL = dict(type="FocalLoss", use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0)
TEST_CFG = dict(nms_pre=1000, min_bbox_size=0, score_thr=0.05, nms=dict(type="nms", iou_threshold=0.6), max_per_img=100)
#: gfocal's delta_loss and the RetinaHead settings that give the same loss.
RETINANET_BOX_LOSSES = {
    "l1": dict(loss_bbox=dict(type="L1Loss", loss_weight=1.0)),
    "smooth_l1": dict(loss_bbox=dict(type="SmoothL1Loss", beta=0.11, loss_weight=1.0)),
    "giou": dict(loss_bbox=dict(type="GIoULoss", loss_weight=2.0), reg_decoded_bbox=True),
}


def variant_config(name, **overrides):
    return ModelConfig(num_classes=NUM_CLASSES, strides=STRIDES, **{**VARIANTS[name].overrides, **overrides})


def images_with_area(count):
    """The batch's first ``count`` (boxes, labels), without the box that has no width."""
    kept = []
    for boxes, labels in list(zip(BOXES, LABELS))[:count]:
        pairs = [(box, label) for box, label in zip(boxes, labels) if box[2] > box[0] and box[3] > box[1]]
        kept.append(([box for box, _ in pairs], [label for _, label in pairs]))
    return kept


def as_targets(images):
    return [
        {"boxes": torch.tensor(b).reshape(-1, 4), "labels": torch.tensor(lab, dtype=torch.long)} for b, lab in images
    ]


def random_outputs(num_images, count, box_channels, quality, seed=0, box_offset=0.0):
    """Class logits well above the prior, box outputs (``box_offset`` + noise), optional quality logits."""
    generator = torch.Generator().manual_seed(seed)
    cls_logits = (torch.randn(num_images, count, NUM_CLASSES, generator=generator) - 1.0).requires_grad_()
    boxes = (box_offset + torch.rand(num_images, count, box_channels, generator=generator)).requires_grad_()
    logits = torch.randn(num_images, count, 1, generator=generator).requires_grad_() if quality else None
    return HeadOutputs(cls_logits, boxes, logits)


def assert_same(ours, theirs, names, leaves):
    """Loss values (rtol 1e-5) and their gradients with respect to ``leaves`` (rtol 1e-4)."""
    for name, their_name in names:
        assert ours[name] > 0, name
        torch.testing.assert_close(ours[name], theirs[their_name], rtol=1e-5, atol=1e-6, msg=name)
    our_grads = torch.autograd.grad(sum(ours.values()), leaves)
    their_grads = torch.autograd.grad(sum(theirs.values()), leaves)
    for mine, reference in zip(our_grads, their_grads):
        assert reference.abs().sum() > 0
        torch.testing.assert_close(mine, reference, rtol=1e-4, atol=1e-7)


def mmdet_retina_head(delta_loss):
    return build_mmdet_head(
        type="RetinaHead",
        bbox_coder=dict(type="DeltaXYWHBBoxCoder", target_means=[0.0] * 4, target_stds=[1.0] * 4),
        loss_cls=FOCAL,
        train_cfg=dict(
            assigner=dict(type="MaxIoUAssigner", pos_iou_thr=0.5, neg_iou_thr=0.4, min_pos_iou=0, ignore_iof_thr=-1),
            sampler=dict(type="PseudoSampler"),
            allowed_border=-1,
            pos_weight=-1,
            debug=False,
        ),
        test_cfg=TEST_CFG,
        **RETINANET_BOX_LOSSES[delta_loss],
    )


@pytest.mark.parametrize("delta_loss", list(RETINANET_BOX_LOSSES))
def test_retinanet_losses_equal_mmdetection_retina_head(delta_loss):
    weight = 2.0 if delta_loss == "giou" else 1.0
    config = variant_config("retinanet", delta_loss=delta_loss, loss_bbox_weight=weight)
    shapes, grid = batch_grid()
    outputs = random_outputs(3, grid.points.shape[0], 4, quality=False, box_offset=-0.5)
    images = images_with_area(3)
    valid = valid_locations(grid, IMAGE_SIZES, 32)
    criterion = GFLCriterion.from_config(config)
    ours, _ = criterion(outputs, grid, as_targets(images), valid)
    losses = mmdet_retina_head(delta_loss).loss_by_feat(
        to_levels(outputs.cls_logits, shapes), to_levels(outputs.box_outputs, shapes), *mmdet_ground_truth(images)
    )
    theirs = {name: sum(values) for name, values in losses.items()}
    positives = criterion.last_targets.assignment.positive.sum(1)  # [N]
    assert criterion.last_targets.assignment.ignored.sum() > 10
    ratio = positives.clamp_min(1).sum() / positives.sum().clamp_min(1)
    theirs = {name: value * ratio for name, value in theirs.items()}
    assert_same(ours, theirs, (("loss_focal", "loss_cls"), ("loss_bbox", "loss_bbox")), outputs[:2])


@pytest.mark.parametrize("image", range(len(IMAGE_SIZES)))
def test_retinanet_detections_equal_mmdetection_retina_head(image):
    config = variant_config("retinanet")
    size = IMAGE_SIZES[image]
    meta = {"img_shape": size, "pad_shape": tuple(-(-s // 32) * 32 for s in size)}
    shapes = level_shapes(*meta["pad_shape"])
    grid = location_grid(shapes, STRIDES, config.point_offset, torch.device("cpu"))
    outputs = random_outputs(1, grid.points.shape[0], 4, quality=False, seed=image + 1, box_offset=-0.5)
    with torch.no_grad():
        (expected,) = mmdet_retina_head("l1").predict_by_feat(
            *(to_levels(flat, shapes) for flat in outputs[:2]), batch_img_metas=[meta], rescale=False
        )
        box_coding = build_box_coding(config)
        scores = outputs.cls_logits[0].sigmoid()
        actual = postprocess_image(config, box_coding, scores, None, outputs.box_outputs[0], grid, size)
    assert len(expected.bboxes) > 10
    assert torch.equal(actual["labels"], expected.labels)
    torch.testing.assert_close(actual["boxes"], expected.bboxes, atol=1e-3, rtol=0)
    torch.testing.assert_close(actual["scores"], expected.scores, atol=1e-5, rtol=1e-5)


def fcos_giou_head():
    """mmdetection's FCOSHead as ``fcos_r50-caffe_fpn_gn-head-center-normbbox-centeronreg-giou_1x_coco`` sets it."""
    return mmdet_fcos_head(
        loss_cls=FOCAL,
        loss_bbox=dict(type="GIoULoss", loss_weight=1.0),
        loss_centerness=dict(type="CrossEntropyLoss", use_sigmoid=True, loss_weight=1.0),
        test_cfg=TEST_CFG,
    )


def test_fcos_losses_equal_mmdetection_fcos_head():
    config = variant_config("fcos")
    shapes, _ = batch_grid()
    grid = location_grid(shapes, STRIDES, config.point_offset, torch.device("cpu"))
    outputs = random_outputs(3, grid.points.shape[0], 4, quality=True, box_offset=0.5)
    images = list(zip(BOXES, LABELS))
    criterion = GFLCriterion.from_config(config)
    ours, _ = criterion(outputs, grid, as_targets(images), valid=None)
    losses = fcos_giou_head().loss_by_feat(*(to_levels(flat, shapes) for flat in outputs), *mmdet_ground_truth(images))
    theirs = dict(losses)  # FCOSHead's are single tensors, not per level
    assert criterion.last_targets.positives.label.numel() > 20
    names = (("loss_focal", "loss_cls"), ("loss_bbox", "loss_bbox"), ("loss_centerness", "loss_centerness"))
    assert_same(ours, theirs, names, list(outputs))


@pytest.mark.parametrize("image", range(len(IMAGE_SIZES)))
def test_fcos_detections_equal_mmdetection_fcos_head(image):
    config = variant_config("fcos")
    size = IMAGE_SIZES[image]
    meta = {"img_shape": size, "pad_shape": tuple(-(-s // 32) * 32 for s in size)}
    shapes = level_shapes(*meta["pad_shape"])
    grid = location_grid(shapes, STRIDES, config.point_offset, torch.device("cpu"))
    outputs = random_outputs(1, grid.points.shape[0], 4, quality=True, seed=image + 1, box_offset=0.5)
    pixels = outputs.box_outputs * grid.strides[:, None]  # FCOSHead scales by the stride in eval
    with torch.no_grad():
        (expected,) = fcos_giou_head().predict_by_feat(
            to_levels(outputs.cls_logits, shapes),
            to_levels(pixels, shapes),
            to_levels(outputs.quality_logits, shapes),
            batch_img_metas=[meta],
            rescale=False,
        )
        box_coding = build_box_coding(config)
        scores, factors = build_quality(config, box_coding)(32).scores(outputs.cls_logits, outputs.quality_logits)
        actual = postprocess_image(config, box_coding, scores[0], factors[0], outputs.box_outputs[0], grid, size)
    assert len(expected.bboxes) > 10
    assert torch.equal(actual["labels"], expected.labels)
    torch.testing.assert_close(actual["boxes"], expected.bboxes, atol=1e-3, rtol=0)
    torch.testing.assert_close(actual["scores"], expected.scores, atol=1e-5, rtol=1e-5)


def mmdet_tood_head():
    """mmdetection's TOODHead with the train settings of ``tood_r50_fpn_1x_coco``, past its initial epochs."""
    head = build_mmdet_head(
        type="TOODHead",
        anchor_type="anchor_free",
        initial_loss_cls=dict(FOCAL, activated=True),
        loss_cls=dict(type="QualityFocalLoss", use_sigmoid=True, activated=True, beta=2.0, loss_weight=1.0),
        loss_bbox=dict(type="GIoULoss", loss_weight=2.0),
        train_cfg=dict(
            initial_epoch=4,
            initial_assigner=dict(type="ATSSAssigner", topk=9),
            assigner=dict(type="TaskAlignedAssigner", topk=13),
            alpha=1,
            beta=6,
            allowed_border=-1,
            pos_weight=-1,
            debug=False,
        ),
    )
    return head


@pytest.mark.parametrize("num_images", [3, 1], ids=["three-images", "one-image"])
def test_tood_losses_equal_mmdetection_tood_head(num_images, monkeypatch):
    import mmdet.models.dense_heads.tood_head as tood_head

    # TOODHead reads the epoch from mmengine's message hub: past its initial (ATSS) epochs.
    hub = SimpleNamespace(get_info=lambda key: {"epoch": 4}[key])
    monkeypatch.setattr(tood_head.MessageHub, "get_current_instance", lambda: hub)
    config = variant_config("tood")
    shapes, grid = batch_grid()
    # Distances of 1 to 5 strides, so predicted boxes overlap the ground truth and the alignment is not 0.
    outputs = random_outputs(num_images, grid.points.shape[0], 4, quality=False, box_offset=1.0)
    boxes = outputs.box_outputs * 4
    outputs = outputs._replace(box_outputs=boxes)
    images = list(zip(BOXES, LABELS))[:num_images]
    valid = valid_locations(grid, IMAGE_SIZES[:num_images], 32)
    criterion = GFLCriterion.from_config(config)
    ours, _ = criterion(outputs, grid, as_targets(images), valid)
    assert criterion.last_targets.positives.label.numel() > 5
    decoded = build_box_coding(config).decode(boxes, grid.points, grid.strides) / grid.strides[:, None]
    losses = mmdet_tood_head().loss_by_feat(
        to_levels(outputs.cls_logits.sigmoid(), shapes), to_levels(decoded, shapes), *mmdet_ground_truth(images)
    )
    theirs = {name: sum(values) for name, values in losses.items()}
    leaves = [outputs.cls_logits, boxes]
    assert_same(ours, theirs, (("loss_qfl", "loss_cls"), ("loss_bbox", "loss_bbox")), leaves)
