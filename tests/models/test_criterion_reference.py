"""GFLCriterion's values against a reference written here from PAPER.md's formulas, for every variant.

The reference shares only the assignment with the criterion (each assigner has tests of its own,
and mmdetection parity in tests/interop); every loss term is written out again, per positive
where the paper (or the detector: RetinaNet's L1 on deltas, TOOD's alignment targets) defines it per
positive, so a wrong normaliser, weight or detach shows as a value.
"""

import math

import pytest
import torch

from gfocal.models import ModelConfig
from gfocal.models.criterion import GFLCriterion
from gfocal.models.grid import location_grid, valid_locations
from gfocal.models.head import HeadOutputs
from gfocal.models.quality import joint_score_logits
from gfocal.models.targets import pad_targets
from gfocal.models.variants import VARIANTS
from gfocal.ops import centerness

SHAPES, STRIDES = [(8, 8), (4, 4), (2, 2)], (8, 16, 32)  # a 64 x 64 batch
IMAGE_SIZES = [(64, 64), (40, 56)]
TARGETS = [
    {"boxes": torch.tensor([[4.0, 6.0, 40.0, 50.0], [30.0, 28.0, 62.0, 60.0]]), "labels": torch.tensor([1, 0])},
    {"boxes": torch.tensor([[2.0, 3.0, 22.0, 36.0]]), "labels": torch.tensor([2])},
]


def iou_and_giou(box, gt):
    """Plain-number IoU and GIoU of two xyxy boxes."""
    width = max(0.0, min(box[2], gt[2]) - max(box[0], gt[0]))
    height = max(0.0, min(box[3], gt[3]) - max(box[1], gt[1]))
    inter = width * height
    union = (box[2] - box[0]) * (box[3] - box[1]) + (gt[2] - gt[0]) * (gt[3] - gt[1]) - inter
    hull = (max(box[2], gt[2]) - min(box[0], gt[0])) * (max(box[3], gt[3]) - min(box[1], gt[1]))
    iou = inter / union
    return iou, iou - (hull - union) / hull


def reference_losses(config, outputs, grid, targets, valid, assignment):
    """PAPER.md's losses with its weights (GIoU 2, DFL 0.25, QFL beta 2, focal alpha 0.25 gamma 2), written out:
    QFL / focal (+ centerness) over the valid locations that are not ignored, GIoU (or L1 on deltas) and DFL
    per positive of ``assignment``."""
    gt_boxes, gt_labels, _ = pad_targets(targets, torch.device("cpu"))
    logits = outputs.cls_logits
    if config.dgqp:
        logits = joint_score_logits(logits, outputs.quality_logits)
    sigma = logits.sigmoid().double()  # [N, A, C]
    target = torch.zeros_like(sigma)
    box_terms = []  # per positive: (weight, GIoU loss, DFL or None)
    centerness_bce = 0.0
    for image, location in assignment.positive.nonzero().tolist():
        gt = gt_boxes[image, assignment.gt_index[image, location]].tolist()
        label = int(gt_labels[image, assignment.gt_index[image, location]])
        (x, y), stride = grid.points[location].tolist(), float(grid.strides[location])
        raw = outputs.box_outputs[image, location].double()
        if config.box == "anchor_delta":
            # R-CNN deltas on a square of 8 strides, normalised by (0.1, 0.1, 0.2, 0.2) (ATSS) or 1s (RetinaNet)
            dx, dy, dw, dh = raw.tolist()
            sx, sy, sw, sh = config.delta_stds
            side = 8 * stride
            cx, cy, w, h = (
                x + side * sx * dx,
                y + side * sy * dy,
                side * math.exp(sw * dw),
                side * math.exp(sh * dh),
            )
            box = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
            gw, gh = gt[2] - gt[0], gt[3] - gt[1]
            wanted = [((gt[0] + gt[2]) / 2 - x) / side / sx, ((gt[1] + gt[3]) / 2 - y) / side / sy]
            wanted += [math.log(gw / side) / sw, math.log(gh / side) / sh]
            l1 = sum(abs(d - t) for d, t in zip((dx, dy, dw, dh), wanted))
        else:
            if config.box == "dfl":
                probs = raw.reshape(4, -1).softmax(-1)
                edges = [float((p * torch.arange(len(p))).sum()) * stride for p in probs]
            else:
                edges = [float(d) * stride for d in raw]
            box = [x - edges[0], y - edges[1], x + edges[2], y + edges[3]]
        iou, giou = iou_and_giou(box, gt)
        ratio = (min(x - gt[0], gt[2] - x) / max(x - gt[0], gt[2] - x)) * (
            min(y - gt[1], gt[3] - y) / max(y - gt[1], gt[3] - y)
        )
        center = math.sqrt(max(ratio, 0.0))
        if config.classification == "qfl":
            target[image, location, label] = iou if config.quality_label == "iou" else center
            weight = float(sigma[image, location].max())
        elif config.classification == "task_aligned":
            weight = float(assignment.soft_target[image, location])
            target[image, location, label] = weight
        elif config.classification == "focal_only":
            target[image, location, label] = 1.0
            weight = 1.0
        else:
            target[image, location, label] = 1.0
            q = float(outputs.quality_logits[image, location, 0].sigmoid())
            centerness_bce -= center * math.log(q) + (1 - center) * math.log(1 - q)
            weight = center
        dfl = None
        if config.box == "dfl":
            distances = [x - gt[0], y - gt[1], gt[2] - x, gt[3] - y]
            dfl = 0.0
            for probs, distance in zip(raw.reshape(4, -1).softmax(-1).tolist(), distances):
                d = min(max(distance / stride, 0.0), 4 - 0.1)
                left = int(d)
                dfl -= ((left + 1 - d) * math.log(probs[left]) + (d - left) * math.log(probs[left + 1])) / 4
        box_terms.append((weight, l1 if config.delta_loss == "l1" else 1 - giou, dfl))

    num_pos = max(len(box_terms), 1)
    trained = valid if assignment.ignored is None else valid & ~assignment.ignored
    mask = trained.unsqueeze(-1).double()
    weight_sum = max(sum(w for w, _, _ in box_terms), 1.0)
    if config.classification in ("qfl", "task_aligned"):
        bce = -(target * sigma.log() + (1 - target) * (1 - sigma).log())
        normaliser = weight_sum if config.classification == "task_aligned" else num_pos  # TOOD: the targets' sum
        losses = {"loss_qfl": ((target - sigma).abs() ** 2 * bce * mask).sum() / normaliser}
    else:
        p_t = torch.where(target > 0, sigma, 1 - sigma)
        alpha_t = torch.where(target > 0, 0.25, 0.75)
        losses = {"loss_focal": (-alpha_t * (1 - p_t) ** 2 * p_t.log() * mask).sum() / num_pos}
        if config.classification == "focal":
            losses["loss_centerness"] = centerness_bce / num_pos
    losses["loss_bbox"] = config.loss_bbox_weight * sum(w * g for w, g, _ in box_terms) / weight_sum
    if config.box == "dfl":
        losses["loss_dfl"] = 0.25 * sum(w * d for w, _, d in box_terms) / weight_sum
    return losses, len(box_terms)


@pytest.mark.parametrize("variant", VARIANTS)
def test_criterion_equals_the_written_out_losses(variant):
    overrides = VARIANTS[variant].overrides
    # FCOS's level ranges for these three levels: up to 32, 32 to 64, above 64 pixels.
    ranges = {"fcos_range_edges": (32.0, 64.0)} if overrides.get("assigner") == "fcos" else {}
    config = ModelConfig(num_classes=3, reg_max=4, strides=STRIDES, **overrides, **ranges)
    grid = location_grid(SHAPES, STRIDES, config.point_offset, torch.device("cpu"))
    valid = valid_locations(grid, IMAGE_SIZES)
    generator = torch.Generator().manual_seed(0)
    count = grid.points.shape[0]
    quality = torch.randn(2, count, 1, generator=generator) if config.classification == "focal" or config.dgqp else None
    # Logits near 0 (scores ~0.5): box weights above the normaliser's floor of 1, every term sizeable.
    outputs = HeadOutputs(
        torch.randn(2, count, 3, generator=generator),
        0.5 + torch.rand(2, count, 4 * config.bins, generator=generator),
        quality,
    )
    criterion = GFLCriterion.from_config(config)
    losses, _ = criterion(outputs, grid, TARGETS, valid)
    expected, num_pos = reference_losses(config, outputs, grid, TARGETS, valid, criterion.last_targets.assignment)
    assert num_pos > 3
    assert set(losses) == set(expected)
    for name, value in expected.items():
        assert float(value) > 0.01, name
        torch.testing.assert_close(
            losses[name].double(), torch.as_tensor(value, dtype=torch.double), rtol=1e-5, atol=1e-7, msg=name
        )


def test_centerness_known_values():
    points = torch.tensor([[30.0, 20.0], [40.0, 35.0]])
    boxes = torch.tensor([[10.0, 10.0, 70.0, 60.0], [10.0, 10.0, 70.0, 60.0]])
    # (l, t, r, b) = (20, 10, 40, 40): sqrt(20/40 * 10/40); the box centre scores 1.
    torch.testing.assert_close(centerness(points, boxes), torch.tensor([math.sqrt(0.125), 1.0]))
