"""Transforms keep boxes aligned with pixels; resize sizes follow the keep-ratio rules."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torchvision import tv_tensors

from gfocal.data.transforms import build_transforms, keep_ratio_size, to_tv_target


def _box_from_pixels(image: torch.Tensor) -> list[float]:
    """xyxy extent of the bright pixels (> 127) of a uint8 [3, H, W] image."""
    ys, xs = np.nonzero(image[0].numpy() > 127)
    return [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


@pytest.mark.parametrize("seed", range(4))
def test_transformed_box_matches_the_drawn_box(seed):
    random.seed(seed)
    torch.manual_seed(seed)
    height, width = 60, 90
    x0, y0, x1, y1 = 10 + 5 * seed, 8, 50, 40 + seed
    image = torch.zeros(3, height, width, dtype=torch.uint8)
    image[:, y0:y1, x0:x1] = 255
    boxes = torch.tensor([[x0, y0, x1, y1]], dtype=torch.float32)
    target = to_tv_target(boxes, torch.tensor([2]), torch.tensor([False]), height, width)
    transform = build_transforms(train=True, max_size=120, multiscale=(64, 160), hflip=0.5)
    out, out_target = transform(tv_tensors.Image(image), target)
    np.testing.assert_allclose(out_target["boxes"][0].tolist(), _box_from_pixels(out), atol=1.01)
    assert out_target["labels"].tolist() == [2] and out.dtype == torch.uint8


def test_flip_always_mirrors_boxes():
    image = torch.zeros(3, 10, 20, dtype=torch.uint8)
    target = to_tv_target(torch.tensor([[2.0, 1.0, 6.0, 5.0]]), torch.tensor([0]), torch.tensor([False]), 10, 20)
    _, out = build_transforms(train=True, max_size=20, hflip=1.0)(tv_tensors.Image(image), target)
    assert out["boxes"].tolist() == [[14.0, 1.0, 18.0, 5.0]]


def test_degenerate_boxes_are_dropped_with_their_labels():
    image = torch.zeros(3, 100, 100, dtype=torch.uint8)
    boxes = torch.tensor([[0.0, 0.0, 50.0, 50.0], [10.0, 10.0, 11.0, 11.5], [60.0, 60.0, 90.0, 95.0]])
    target = to_tv_target(boxes, torch.tensor([0, 1, 2]), torch.tensor([False, False, True]), 100, 100)
    out, out_target = build_transforms(train=False, max_size=50)(tv_tensors.Image(image), target)
    assert out.shape == (3, 50, 50)
    assert out_target["labels"].tolist() == [0, 2] and out_target["ignore"].tolist() == [False, True]


@pytest.mark.parametrize(
    ("h", "w", "max_size", "min_size", "expected"),
    [(480, 640, 320, None, (240, 320)), (640, 480, 320, None, (320, 240)), (480, 640, 1333, 800, (800, 1067)), (200, 1000, 1333, 800, (267, 1333))],
)
def test_keep_ratio_size(h, w, max_size, min_size, expected):
    assert keep_ratio_size(h, w, max_size, min_size) == expected


def test_multiscale_sizes_stay_in_range():
    random.seed(0)
    transform = build_transforms(train=True, max_size=256, multiscale=(128, 256), hflip=0.0)
    image = tv_tensors.Image(torch.zeros(3, 50, 100, dtype=torch.uint8))
    target = to_tv_target(torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.bool), 50, 100)
    widths = {transform(image, target)[0].shape[-1] for _ in range(20)}
    assert len(widths) > 1 and all(w % 32 == 0 and 128 <= w <= 256 for w in widths)
