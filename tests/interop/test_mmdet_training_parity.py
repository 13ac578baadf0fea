"""Training parity: GFLCriterion's losses and gradients equal mmdetection 3.3's ``GFLHead.loss_by_feat``.

Both see the same head outputs (random, at every level) and the same ground truth, in a zero-padded
batch of images of different sizes: mmdetection's valid flags come from each image's ``pad_shape``
(its size rounded up to 32, as its data preprocessor sets it), gfocal's from
:func:`gfocal.models.assigner.valid_locations`. The boxes include tiny ones, ones on the image
border, one without width (mmdetection's COCO reader drops it, gfocal's readers and model refuse it; here
both heads see it and give it no positive) and an image without any.

GFLv2: mmdetection 3.3 has no DGQP head (no ``GFLHeadV2`` in ``mmdet.models.dense_heads``); its
GFL loss is fed the joint score ``sigmoid(cls) * sigmoid(quality)`` as logits
(:func:`gfocal.models.quality.joint_score_logits`), which is GFLv2's loss on its joint score, so the
criterion's ``dgqp=True`` path is checked through to the quality logits.

One known difference, kept and pinned here: mmdetection's QFL normaliser counts each image's
positives as at least 1 (``SamplingResult.num_pos = max(pos_inds.numel(), 1)``), so an image
without positives adds 1; gfocal divides by the batch's positives (at least 1), as PAPER.md states.
Their QFL is rescaled by the ratio of the two normalisers before comparing values and gradients.
"""

import mmcv_ops_standin
import pytest
import torch

from gfocal.models import ModelConfig
from gfocal.models.assigner import atss_assign
from gfocal.models.criterion import GFLCriterion
from gfocal.models.grid import location_grid, valid_locations
from gfocal.models.head import HeadOutputs
from gfocal.models.quality import joint_score_logits
from gfocal.models.targets import pad_targets

pytestmark = pytest.mark.mmdet

NUM_CLASSES = 3
REG_MAX = 8
STRIDES = (8, 16, 32, 64, 128)
BATCH_SHAPE = (160, 192)  # padded batch, a multiple of 32 and of every stride up to 32
IMAGE_SIZES = [(160, 192), (100, 90), (150, 130)]
BOXES = [
    # large, tiny (3 x 4 px), on the top-left and bottom-right borders
    [[20.0, 30.0, 150.0, 140.0], [60.0, 60.0, 63.0, 64.0], [0.0, 0.0, 40.0, 25.0], [150.0, 120.0, 192.0, 160.0]],
    # the whole image, a tiny box, a box without width (no positive on either side: no point is inside it)
    [[10.0, 5.0, 90.0, 100.0], [44.0, 50.5, 46.0, 53.0], [30.0, 40.0, 30.0, 70.0]],
    [],  # no ground truth
]
LABELS = [[0, 2, 1, 1], [2, 0, 1], []]


def build_mmdet_head(**settings):
    """An mmdetection dense head on NUM_CLASSES, 32 channels, one conv per tower, with the settings GFL
    and ATSS share (one square anchor of 8 strides per location, ATSS with top 9); ``settings`` add
    its type and losses, and may replace those."""
    mmcv_ops_standin.install()
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import ConfigDict

    register_all_modules()
    head = dict(
        num_classes=NUM_CLASSES,
        in_channels=32,
        stacked_convs=1,
        feat_channels=32,
        anchor_generator=dict(
            type="AnchorGenerator", ratios=[1.0], octave_base_scale=8, scales_per_octave=1, strides=list(STRIDES)
        ),
        train_cfg=dict(assigner=dict(type="ATSSAssigner", topk=9), allowed_border=-1, pos_weight=-1, debug=False),
    )
    return MODELS.build(ConfigDict({**head, **settings}))


def mmdet_gfl_head():
    return build_mmdet_head(
        type="GFLHead",
        reg_max=REG_MAX,
        loss_cls=dict(type="QualityFocalLoss", use_sigmoid=True, beta=2.0, loss_weight=1.0),
        loss_dfl=dict(type="DistributionFocalLoss", loss_weight=0.25),
        loss_bbox=dict(type="GIoULoss", loss_weight=2.0),
    )


def to_levels(flat, shapes):
    """Flat [N, A, K] outputs as mmdetection's per-level [N, K, H, W] maps."""
    sizes = [h * w for h, w in shapes]
    return [
        level.transpose(1, 2).reshape(flat.shape[0], flat.shape[2], h, w)
        for level, (h, w) in zip(flat.split(sizes, dim=1), shapes)
    ]


def mmdet_ground_truth(images):
    """mmdetection's (gt instances, image metas) for (boxes, labels) pairs of the first images of IMAGE_SIZES."""
    from mmengine.structures import InstanceData

    gt = [
        InstanceData(bboxes=torch.tensor(b).reshape(-1, 4), labels=torch.tensor(labels, dtype=torch.long))
        for b, labels in images
    ]
    metas = [
        dict(img_shape=size, pad_shape=tuple(-(-s // 32) * 32 for s in size), batch_input_shape=BATCH_SHAPE)
        for size in IMAGE_SIZES[: len(images)]
    ]
    return gt, metas


def mmdet_losses(head, score_logits, box_outputs, shapes, images):
    """mmdetection's loss dict (levels summed) for flat [N, A, K] outputs, reshaped to its [N, K, H, W] levels."""
    losses = head.loss_by_feat(
        to_levels(score_logits, shapes), to_levels(box_outputs, shapes), *mmdet_ground_truth(images)
    )
    return {name: sum(values) for name, values in losses.items()}


@pytest.mark.parametrize("dgqp", [False, True], ids=["gfl", "gflv2"])
@pytest.mark.parametrize("num_images", [3, 1], ids=["three-images", "one-image"])
def test_losses_and_gradients_equal_mmdetection(dgqp, num_images):
    config = ModelConfig(num_classes=NUM_CLASSES, reg_max=REG_MAX, strides=STRIDES, dgqp=dgqp)
    shapes = [(-(-BATCH_SHAPE[0] // s), -(-BATCH_SHAPE[1] // s)) for s in STRIDES]
    grid = location_grid(shapes, STRIDES, 0.0, torch.device("cpu"))
    count = grid.points.shape[0]
    generator = torch.Generator().manual_seed(0)
    # Scores well above the prior, so the box weights (max score) are not near zero.
    cls_logits = (torch.randn(num_images, count, NUM_CLASSES, generator=generator) - 1.0).requires_grad_()
    box_outputs = (2 * torch.randn(num_images, count, 4 * (REG_MAX + 1), generator=generator)).requires_grad_()
    quality = torch.randn(num_images, count, 1, generator=generator).requires_grad_() if dgqp else None
    images = list(zip(BOXES, LABELS))[:num_images]
    targets = [
        {"boxes": torch.tensor(b).reshape(-1, 4), "labels": torch.tensor(labels, dtype=torch.long)}
        for b, labels in images
    ]

    valid = valid_locations(grid, IMAGE_SIZES[:num_images], 32)
    ours, stats = GFLCriterion.from_config(config)(HeadOutputs(cls_logits, box_outputs, quality), grid, targets, valid)
    assert stats["num_pos"] > 0
    score_logits = cls_logits if quality is None else joint_score_logits(cls_logits, quality)
    theirs = mmdet_losses(mmdet_gfl_head(), score_logits, box_outputs, shapes, images)
    gt_boxes, _, gt_valid = pad_targets(targets, torch.device("cpu"))
    positives = atss_assign(grid, gt_boxes, gt_valid, valid=valid).positive.sum(1)  # [N]
    theirs["loss_cls"] = theirs["loss_cls"] * positives.clamp_min(1).sum() / positives.sum().clamp_min(1)

    for name, their_name in (("loss_qfl", "loss_cls"), ("loss_bbox", "loss_bbox"), ("loss_dfl", "loss_dfl")):
        assert ours[name] > 0
        torch.testing.assert_close(ours[name], theirs[their_name], rtol=1e-5, atol=1e-6, msg=name)
    leaves = [t for t in (cls_logits, box_outputs, quality) if t is not None]
    our_grads = torch.autograd.grad(sum(ours.values()), leaves)
    their_grads = torch.autograd.grad(sum(theirs.values()), leaves)
    for name, mine, reference in zip(("cls_logits", "box_outputs", "quality_logits"), our_grads, their_grads):
        assert reference.abs().sum() > 0
        torch.testing.assert_close(mine, reference, rtol=1e-4, atol=1e-7, msg=name)
