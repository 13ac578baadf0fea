"""TOOD's task-aligned assigner equals mmdetection 3.3's: ``TaskAlignedAssigner.assign`` (positives, assigned
ground truth, alignment metrics, IoUs) and ``TOODHead._get_targets_single`` (the normalised alignment
that TOOD trains its scores towards, gfocal's ``soft_target``).

The batch is the GFL training-parity batch (``test_mmdet_training_parity.py``): images of different sizes
zero-padded together, tiny and border boxes, a box without width, an image without boxes. Scores and
predicted boxes are random at every location; gfocal assigns the whole padded batch at once,
mmdetection each image alone on its valid locations (as its heads do), with square anchors of 8
strides centred on gfocal's points (TOOD's ``anchor_type="anchor_free"`` reads only their centres).
"""

import mmcv_ops_standin
import pytest
import torch
from test_mmdet_training_parity import BATCH_SHAPE, BOXES, IMAGE_SIZES, LABELS, NUM_CLASSES, STRIDES

from gfocal.models.assigner import Predictions
from gfocal.models.assigner.task_aligned import task_aligned_assign
from gfocal.models.grid import location_grid, valid_locations
from gfocal.models.targets import pad_targets
from gfocal.ops import square_anchors

pytestmark = pytest.mark.mmdet

TOPK, ALPHA, BETA = 13, 1, 6


def mmdet_tood_head():
    """mmdetection's TOOD head with the train settings of its ``tood_r50_fpn_1x_coco`` config (small towers)."""
    mmcv_ops_standin.install()
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import ConfigDict

    register_all_modules()
    head = dict(
        type="TOODHead",
        num_classes=NUM_CLASSES,
        in_channels=32,
        stacked_convs=1,
        feat_channels=32,
        anchor_type="anchor_free",
        anchor_generator=dict(
            type="AnchorGenerator", ratios=[1.0], octave_base_scale=8, scales_per_octave=1, strides=list(STRIDES)
        ),
        bbox_coder=dict(type="DeltaXYWHBBoxCoder", target_means=[0.0] * 4, target_stds=[0.1, 0.1, 0.2, 0.2]),
        initial_loss_cls=dict(type="FocalLoss", use_sigmoid=True, activated=True, gamma=2.0, alpha=0.25),
        loss_cls=dict(type="QualityFocalLoss", use_sigmoid=True, activated=True, beta=2.0, loss_weight=1.0),
        loss_bbox=dict(type="GIoULoss", loss_weight=2.0),
        train_cfg=dict(
            initial_epoch=4,
            initial_assigner=dict(type="ATSSAssigner", topk=9),
            assigner=dict(type="TaskAlignedAssigner", topk=TOPK),
            alpha=ALPHA,
            beta=BETA,
            allowed_border=-1,
            pos_weight=-1,
            debug=False,
        ),
    )
    return MODELS.build(ConfigDict(head))


def batch(seed):
    """The grid, valid mask, padded ground truth and random predictions of the parity batch."""
    shapes = [(-(-BATCH_SHAPE[0] // s), -(-BATCH_SHAPE[1] // s)) for s in STRIDES]
    grid = location_grid(shapes, STRIDES, 0.0, torch.device("cpu"))
    valid = valid_locations(grid, IMAGE_SIZES, 32)
    targets = [
        {"boxes": torch.tensor(b).reshape(-1, 4), "labels": torch.tensor(labels, dtype=torch.long)}
        for b, labels in zip(BOXES, LABELS)
    ]
    generator = torch.Generator().manual_seed(seed)
    count = grid.points.shape[0]
    # Scores of a head that has learned a little; boxes around each point, a few strides per edge.
    scores = torch.randn(len(targets), count, NUM_CLASSES, generator=generator).sigmoid()
    edges = torch.rand(len(targets), count, 4, generator=generator) * 6 * grid.strides.unsqueeze(-1)
    boxes = torch.cat((grid.points - edges[..., :2], grid.points + edges[..., 2:]), dim=-1)
    return grid, valid, targets, Predictions(scores, boxes)


@pytest.mark.parametrize("seed", range(3))
def test_assignment_equals_mmdetection_task_aligned_assigner(seed):
    mmcv_ops_standin.install()
    from mmdet.models.task_modules.assigners import TaskAlignedAssigner
    from mmengine.structures import InstanceData

    grid, valid, targets, preds = batch(seed)
    ours = task_aligned_assign(grid, pad_targets(targets, torch.device("cpu")), preds, TOPK, ALPHA, BETA, valid)
    anchors = square_anchors(grid.points, grid.strides, 8.0)
    assigner = TaskAlignedAssigner(topk=TOPK)
    total = 0
    for image, target in enumerate(targets):
        keep = valid[image]
        theirs = assigner.assign(
            InstanceData(priors=anchors[keep], scores=preds.scores[image][keep], bboxes=preds.boxes[image][keep]),
            InstanceData(bboxes=target["boxes"], labels=target["labels"]),
            alpha=ALPHA,
            beta=BETA,
        )
        positive = theirs.gt_inds > 0
        total += int(positive.sum())
        assert torch.equal(ours.positive[image][keep], positive)
        assert not ours.positive[image][~keep].any()
        assert torch.equal(ours.gt_index[image][keep][positive], theirs.gt_inds[positive] - 1)
        torch.testing.assert_close(ours.metric[image][keep], theirs.assign_metrics, rtol=1e-6, atol=0)
    assert total > 20


@pytest.mark.parametrize("seed", range(3))
def test_soft_targets_equal_mmdetection_tood_normalised_alignment(seed):
    from mmengine.structures import InstanceData

    grid, valid, targets, preds = batch(seed)
    ours = task_aligned_assign(grid, pad_targets(targets, torch.device("cpu")), preds, TOPK, ALPHA, BETA, valid)
    head = mmdet_tood_head()
    anchors = square_anchors(grid.points, grid.strides, 8.0)
    for image, target in enumerate(targets):
        meta = {"img_shape": IMAGE_SIZES[image], "pad_shape": BATCH_SHAPE}
        _, labels, _, _, theirs = head._get_targets_single(
            preds.scores[image],
            preds.boxes[image],
            anchors,
            valid[image],
            InstanceData(bboxes=target["boxes"], labels=target["labels"]),
            meta,
        )
        assert torch.equal(labels < NUM_CLASSES, ours.positive[image])
        assert (theirs > 0).any() == bool(len(target["boxes"]))
        torch.testing.assert_close(ours.soft_target[image], theirs, rtol=1e-6, atol=1e-7)
