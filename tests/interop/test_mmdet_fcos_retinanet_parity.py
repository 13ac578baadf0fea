"""FCOS's and RetinaNet's assigners equal mmdetection 3.3's: ``FCOSHead._get_targets_single`` with centre
sampling (positives, their classes and regression targets) and ``MaxIoUAssigner.assign`` with RetinaNet's
thresholds (positive with its ground truth, negative, ignored).

The batch is the GFL training-parity batch (``test_mmdet_training_parity.py``): images of different sizes
zero-padded together, tiny and border boxes, an image without boxes. gfocal assigns the padded batch at
once; mmdetection FCOS each image on the whole batch grid (it has no valid flags), its max-IoU assigner
each image on its valid anchors (as its anchor heads do).

One difference, kept and pinned: mmdetection's max-IoU assigner with ``min_pos_iou=0`` makes a box that
overlaps no anchor claim every anchor (all share its best IoU, 0); gfocal's claims none. Only a box
without area overlaps no anchor, so the max-IoU comparison leaves the batch's box without width out.
"""

import mmcv_ops_standin
import pytest
import torch
from test_mmdet_training_parity import BATCH_SHAPE, BOXES, IMAGE_SIZES, LABELS, NUM_CLASSES, STRIDES

from gfocal.models.assigner.fcos import fcos_assign
from gfocal.models.assigner.max_iou import max_iou_assign
from gfocal.models.grid import location_grid, valid_locations
from gfocal.models.targets import pad_targets
from gfocal.ops import box_to_distance, square_anchors

pytestmark = pytest.mark.mmdet


def batch(offset, keep=lambda box: True):
    shapes = [(-(-BATCH_SHAPE[0] // s), -(-BATCH_SHAPE[1] // s)) for s in STRIDES]
    grid = location_grid(shapes, STRIDES, offset, torch.device("cpu"))
    targets = []
    for boxes, labels in zip(BOXES, LABELS):
        kept = [(box, label) for box, label in zip(boxes, labels) if keep(box)]
        targets.append({
            "boxes": torch.tensor([box for box, _ in kept]).reshape(-1, 4),
            "labels": torch.tensor([label for _, label in kept], dtype=torch.long),
        })  # fmt: skip
    return grid, valid_locations(grid, IMAGE_SIZES, 32), targets


def mmdet_fcos_head(**settings):
    """mmdetection's FCOS head with centre sampling (``fcos_r50-caffe_fpn_gn-head-center-normbbox...``);
    ``settings`` add to its fields (losses, test settings)."""
    mmcv_ops_standin.install()
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import ConfigDict

    register_all_modules()
    return MODELS.build(
        ConfigDict(
            type="FCOSHead",
            num_classes=NUM_CLASSES,
            in_channels=32,
            stacked_convs=1,
            feat_channels=32,
            strides=list(STRIDES),
            center_sampling=True,
            center_sample_radius=1.5,
            norm_on_bbox=True,
            centerness_on_reg=True,
            **settings,
        )
    )


def test_fcos_assignment_equals_mmdetection_fcos_head():
    from mmengine.structures import InstanceData

    head = mmdet_fcos_head()
    grid, valid, targets = batch(offset=0.5)  # mmdetection's point generator: offset 0.5
    their_points = head.prior_generator.grid_priors(grid.level_shapes, device="cpu")
    assert torch.equal(torch.cat(their_points), grid.points)
    ranges = torch.cat([
        torch.tensor(r, dtype=torch.float32).expand(size, 2) for r, size in zip(head.regress_ranges, grid.level_sizes)
    ])  # fmt: skip
    padded = pad_targets(targets, torch.device("cpu"))
    ours = fcos_assign(grid, padded.boxes, padded.valid, valid=valid)
    total = 0
    for image, target in enumerate(targets):
        labels, distances = head._get_targets_single(
            InstanceData(bboxes=target["boxes"], labels=target["labels"]), grid.points, ranges, grid.level_sizes
        )
        positive = labels < NUM_CLASSES
        total += int(positive.sum())
        assert torch.equal(ours.positive[image], positive)
        gt_index = ours.gt_index[image][positive]
        assert torch.equal(target["labels"][gt_index], labels[positive])
        ours_distances = box_to_distance(grid.points[positive], target["boxes"][gt_index], eps=0.0)
        assert torch.equal(ours_distances, distances[positive])
    assert total > 20


def test_max_iou_assignment_equals_mmdetection_max_iou_assigner():
    mmcv_ops_standin.install()
    from mmdet.models.task_modules.assigners import MaxIoUAssigner
    from mmengine.structures import InstanceData

    grid, valid, targets = batch(offset=0.0, keep=lambda box: box[2] > box[0] and box[3] > box[1])
    padded = pad_targets(targets, torch.device("cpu"))
    ours = max_iou_assign(grid, padded.boxes, padded.valid, 0.5, 0.4, 0.0, 8.0, valid)
    anchors = square_anchors(grid.points, grid.strides, 8.0)
    assigner = MaxIoUAssigner(pos_iou_thr=0.5, neg_iou_thr=0.4, min_pos_iou=0.0, ignore_iof_thr=-1)
    counts = torch.zeros(3, dtype=torch.long)
    for image, target in enumerate(targets):
        keep = valid[image]
        theirs = assigner.assign(
            InstanceData(priors=anchors[keep]), InstanceData(bboxes=target["boxes"], labels=target["labels"])
        ).gt_inds  # >0: 1 + gt index, 0: negative, -1: ignored
        counts += torch.stack(((theirs > 0).sum(), (theirs == 0).sum(), (theirs == -1).sum()))
        assert torch.equal(ours.gt_index[image][keep], (theirs - 1).clamp_min(-1).where(theirs != 0, -1))
        assert torch.equal(ours.ignored[image][keep], theirs == -1)
        assert not (ours.positive[image][~keep].any() or ours.ignored[image][~keep].any())
    assert (counts > 5).all(), counts  # positives, negatives and ignored anchors all occur
