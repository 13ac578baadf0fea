"""ATSS assignment against a straightforward per-ground-truth reference written here."""

import math

import pytest
import torch

from gfocal.models.assigner import atss_assign
from gfocal.models.grid import location_grid, valid_locations

STRIDES = (8, 16, 32, 64, 128)


def reference_atss(points, strides, level_sizes, gt_boxes, topk=9, anchor_scale=8.0):
    """One ground truth at a time, with plain Python lists: the textbook ATSS."""
    num_locations = len(points)
    anchors = []
    for (x, y), stride in zip(points.tolist(), strides.tolist()):
        half = stride * anchor_scale / 2
        anchors.append((x - half, y - half, x + half, y + half))

    def iou(a, b):
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = w * h
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / union if union > 0 else 0.0

    best = [(-math.inf, -1)] * num_locations
    for g, box in enumerate(gt_boxes.tolist()):
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        candidates = []
        start = 0
        for size in level_sizes:
            level = range(start, start + size)
            dist = sorted(level, key=lambda i: math.hypot(points[i, 0].item() - cx, points[i, 1].item() - cy))
            candidates += dist[: min(topk, size)]
            start += size
        ious = [iou(anchors[i], box) for i in candidates]
        mean = sum(ious) / len(ious)
        std = math.sqrt(sum((v - mean) ** 2 for v in ious) / (len(ious) - 1)) if len(ious) > 1 else 0.0
        for i, value in zip(candidates, ious):
            x, y = points[i].tolist()
            inside = min(x - box[0], y - box[1], box[2] - x, box[3] - y) > 0.01
            if value >= mean + std and inside and value > best[i][0]:
                best[i] = (value, g)
    return torch.tensor([g for _, g in best])


def random_boxes(generator, count, size):
    centers = torch.rand(count, 2, generator=generator) * size
    extents = torch.exp(torch.rand(count, 2, generator=generator) * math.log(size / 2)) + 1
    boxes = torch.cat((centers - extents / 2, centers + extents / 2), dim=1)
    return boxes.clamp(0, size)


def grid_for(size):
    shapes = [(math.ceil(size / s), math.ceil(size / s)) for s in STRIDES]
    return location_grid(shapes, STRIDES, 0.0, torch.device("cpu"))


@pytest.mark.parametrize("seed", range(12))
def test_vectorised_atss_equals_the_per_gt_reference(seed):
    generator = torch.Generator().manual_seed(seed)
    size = 256
    grid = grid_for(size)
    counts = [int(torch.randint(1, 12, (1,), generator=generator)) for _ in range(3)]
    per_image = [random_boxes(generator, c, size) for c in counts]
    padded = torch.zeros(3, max(counts), 4)
    valid = torch.zeros(3, max(counts), dtype=torch.bool)
    for i, boxes in enumerate(per_image):
        padded[i, : len(boxes)] = boxes
        valid[i, : len(boxes)] = True
    assignment = atss_assign(grid, padded, valid)
    for i, boxes in enumerate(per_image):
        expected = reference_atss(grid.points, grid.strides, grid.level_sizes, boxes)
        assert torch.equal(assignment.gt_index[i], expected), f"image {i} differs"
    assert torch.equal(assignment.positive, assignment.gt_index >= 0)


def test_images_without_boxes_are_all_negative():
    grid = grid_for(128)
    assignment = atss_assign(grid, torch.zeros(2, 0, 4), torch.zeros(2, 0, dtype=torch.bool))
    assert assignment.gt_index.shape == (2, grid.points.shape[0]) and not assignment.positive.any()
    # A padded slot next to a real box in another image gets nothing either.
    boxes = torch.tensor([[[20.0, 20.0, 60.0, 70.0]], [[0.0, 0.0, 0.0, 0.0]]])
    assignment = atss_assign(grid, boxes, torch.tensor([[True], [False]]))
    assert assignment.positive[0].any() and not assignment.positive[1].any()


def test_a_box_smaller_than_the_stride_still_gets_a_positive_when_it_covers_a_point():
    grid = grid_for(128)
    tiny = torch.tensor([[[38.0, 38.0, 42.0, 42.5]]])  # 4x4.5 px around the point (40, 40) of stride 8
    assignment = atss_assign(grid, tiny, torch.ones(1, 1, dtype=torch.bool))
    positives = assignment.positive[0].nonzero()[:, 0]
    assert len(positives) == 1 and grid.points[positives[0]].tolist() == [40.0, 40.0]


@pytest.mark.parametrize("empty", [[40.0, 30.0, 40.0, 70.0], [20.0, 50.0, 90.0, 50.0], [60.0, 60.0, 60.0, 60.0]])
def test_a_box_without_width_or_height_gets_no_positive_and_changes_no_other_assignment(empty):
    """As mmdetection's ATSSAssigner: no point lies more than 0.01 px inside it. (Readers drop such boxes
    and the model refuses them; this is the assigner's own behaviour.)"""
    grid = grid_for(128)
    boxes = torch.tensor([[[20.0, 20.0, 60.0, 70.0], [30.0, 35.0, 50.0, 60.0]]])
    alone = atss_assign(grid, boxes, torch.ones(1, 2, dtype=torch.bool))
    with_empty = atss_assign(grid, torch.cat([boxes, torch.tensor([[empty]])], 1), torch.ones(1, 3, dtype=torch.bool))
    assert alone.positive.any()
    assert torch.equal(with_empty.gt_index, alone.gt_index)  # index 2 (the empty box) nowhere


def test_a_thousand_boxes_in_one_image():
    generator = torch.Generator().manual_seed(0)
    grid = grid_for(512)
    boxes = random_boxes(generator, 1000, 512)[None]
    assignment = atss_assign(grid, boxes, torch.ones(1, 1000, dtype=torch.bool))
    matched = assignment.gt_index[assignment.positive]
    assert matched.min() >= 0 and matched.max() < 1000 and len(matched.unique()) > 300


def shapes_for(height, width, strides=STRIDES):
    return [(math.ceil(height / s), math.ceil(width / s)) for s in strides]


@pytest.mark.parametrize(
    "size_divisible, expected",
    [
        # Each image counts as padded to a multiple of 32 (mmdetection's pad_shape): 100 x 70 to
        # 128 x 96, 200 x 150 to 224 x 160 (the whole batch); valid rows < ceil(pad_h / s), cols likewise.
        (32, [[16 * 12, 8 * 6, 4 * 3, 2 * 2, 1 * 1], [28 * 20, 14 * 10, 7 * 5, 4 * 3, 2 * 2]]),
        # Without a divisor: rows < ceil(h / s), cols < ceil(w / s).
        (1, [[13 * 9, 7 * 5, 4 * 3, 2 * 2, 1 * 1], [25 * 19, 13 * 10, 7 * 5, 4 * 3, 2 * 2]]),
    ],
)
def test_valid_locations_by_hand(size_divisible, expected):
    # Two images, 100 x 70 and 200 x 150, padded together to 224 x 160.
    grid = location_grid(shapes_for(224, 160), STRIDES, 0.0, torch.device("cpu"))
    valid = valid_locations(grid, [(100, 70), (200, 150)], size_divisible)
    assert valid.shape == (2, grid.points.shape[0]) and valid.dtype == torch.bool
    levels = valid.split(grid.level_sizes, dim=1)
    assert [[int(level[i].sum()) for level in levels] for i in range(2)] == expected
    # A top-left block, row-major: on stride 64 (4 x 3 cells) the first image has rows 0-1, cols 0-1.
    assert levels[3][0].nonzero()[:, 0].tolist() == [0, 1, 3, 4]
    # The count never exceeds the feature map.
    one_cell = location_grid([(1, 1)], (128,), 0.0, torch.device("cpu"))
    assert valid_locations(one_cell, [(300, 300)], size_divisible).tolist() == [[True]]


@pytest.mark.parametrize("seed", range(6))
def test_atss_with_an_all_true_mask_is_bit_identical_to_no_mask(seed):
    generator = torch.Generator().manual_seed(seed)
    grid = grid_for(256)
    boxes = torch.stack([random_boxes(generator, 8, 256) for _ in range(2)])
    gt_valid = torch.ones(2, 8, dtype=torch.bool)
    gt_valid[1, 5:] = False
    plain = atss_assign(grid, boxes, gt_valid)
    masked = atss_assign(grid, boxes, gt_valid, valid=torch.ones(2, grid.points.shape[0], dtype=torch.bool))
    assert torch.equal(plain.gt_index, masked.gt_index) and torch.equal(plain.positive, masked.positive)
    assert plain.positive.any()


@pytest.mark.parametrize("seed", range(4))
def test_a_masked_image_is_assigned_as_on_its_own_grid(seed):
    # A 100 x 150 image (its own grid: 128 x 160, with only 1 x 2 and 2 x 3 cells on strides 128
    # and 64, fewer than topk) padded with another into 256 x 256.
    generator = torch.Generator().manual_seed(seed)
    grid = grid_for(256)
    valid = valid_locations(grid, [(100, 150), (256, 256)], 32)
    own = location_grid(shapes_for(128, 160), STRIDES, 0.0, torch.device("cpu"))
    assert torch.equal(grid.points[valid[0]], own.points)
    boxes = random_boxes(generator, 6, 100) * torch.tensor([1.5, 1.0, 1.5, 1.0])
    # An unclipped annotation running past the image: padding points inside it still get nothing.
    boxes = torch.cat((boxes, torch.tensor([[120.0, 60.0, 250.0, 250.0]])))
    padded = torch.stack((boxes, random_boxes(generator, 7, 256)))
    assignment = atss_assign(grid, padded, torch.ones(2, 7, dtype=torch.bool), valid=valid)
    expected = reference_atss(own.points, own.strides, own.level_sizes, boxes)
    assert torch.equal(assignment.gt_index[0, valid[0]], expected)
    assert not assignment.positive[0, ~valid[0]].any()


def test_padding_is_never_positive_even_inside_a_box_running_into_it():
    # One level of 4 x 4 cells, stride 64; the image holds 2 x 2 of them, fewer than topk, so the
    # nearest-9 picks run on into padding, some inside this (unclipped) box with a high IoU.
    grid = location_grid([(4, 4)], (64,), 0.0, torch.device("cpu"))
    valid = valid_locations(grid, [(100, 100)])
    box = torch.tensor([[[40.0, 40.0, 250.0, 250.0]]])
    assignment = atss_assign(grid, box, torch.ones(1, 1, dtype=torch.bool), anchor_scale=4.0, valid=valid)
    assert assignment.positive[0].nonzero()[:, 0].tolist() == [5]  # the point (64, 64), the only valid one inside
