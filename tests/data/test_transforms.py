"""Transforms keep boxes aligned with pixels; resized images have the model's fitted size."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torchvision import tv_tensors

from gfocal.data.mosaic import Mosaic
from gfocal.data.transforms import Augmentation, RandomHueRotation, build_transforms, hue_rotation_matrix, to_tv_target
from gfocal.image_geometry import fit_size


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
    transform = build_transforms(120, 120, Augmentation(scale_range=(0.5, 1.5), min_visible=0.0, color=True))
    out, out_target = transform(tv_tensors.Image(image), target)
    assert tuple(out.shape[-2:]) == fit_size(height, width, 120, 120)
    np.testing.assert_allclose(out_target["boxes"][0].tolist(), _box_from_pixels(out), atol=1.01)
    assert out_target["labels"].tolist() == [2] and out.dtype == torch.uint8


def test_flip_always_mirrors_boxes():
    image = torch.zeros(3, 10, 20, dtype=torch.uint8)
    target = to_tv_target(torch.tensor([[2.0, 1.0, 6.0, 5.0]]), torch.tensor([0]), torch.tensor([False]), 10, 20)
    _, out = build_transforms(20, 20, Augmentation(hflip=1.0))(tv_tensors.Image(image), target)
    assert out["boxes"].tolist() == [[14.0, 1.0, 18.0, 5.0]]


def test_degenerate_boxes_are_dropped_with_their_labels():
    image = torch.zeros(3, 100, 100, dtype=torch.uint8)
    boxes = torch.tensor([[0.0, 0.0, 50.0, 50.0], [10.0, 10.0, 11.0, 11.5], [60.0, 60.0, 90.0, 95.0]])
    target = to_tv_target(boxes, torch.tensor([0, 1, 2]), torch.tensor([False, False, True]), 100, 100)
    out, out_target = build_transforms(50, 50)(tv_tensors.Image(image), target)
    assert out.shape == (3, 50, 50)
    assert out_target["labels"].tolist() == [0, 2] and out_target["ignore"].tolist() == [False, True]


def test_a_box_a_crop_leaves_mostly_outside_is_dropped():
    random.seed(0)
    image = torch.zeros(3, 100, 100, dtype=torch.uint8)
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [40.0, 40.0, 60.0, 60.0]])
    target = to_tv_target(boxes, torch.tensor([0, 1]), torch.tensor([False, False]), 100, 100)
    kept = []
    for _ in range(30):  # zoom x2: the crop is a random quarter of the zoomed image
        _, out = build_transforms(100, 100, Augmentation(scale_range=(2.0, 2.0), hflip=0.0, min_visible=0.5))(
            tv_tensors.Image(image), target
        )
        for box, label in zip(out["boxes"].tolist(), out["labels"].tolist()):
            width, height = box[2] - box[0], box[3] - box[1]
            assert width * height >= 0.5 * 40 * 40 - 1e-3, (box, label)  # at least half of the zoomed box
        kept.append(len(out["labels"]))
    assert min(kept) < max(kept)  # some crops keep the corner box, some do not


def test_zoom_out_pads_and_keeps_the_output_size():
    random.seed(1)
    image = torch.full((3, 60, 80), 200, dtype=torch.uint8)
    target = to_tv_target(torch.tensor([[10.0, 10.0, 30.0, 40.0]]), torch.tensor([0]), torch.tensor([False]), 60, 80)
    out, out_target = build_transforms(64, 64, Augmentation(scale_range=(0.5, 0.5), hflip=0.0))(
        tv_tensors.Image(image), target
    )
    assert tuple(out.shape[-2:]) == (48, 64)
    assert (out == 0).any() and (out == 200).any()  # part canvas, part image
    x0, y0, x1, y1 = out_target["boxes"][0].tolist()
    assert (x1 - x0, y1 - y0) == pytest.approx((8.0, 12.0), abs=0.01)  # 20 x 30 at 0.8 x 0.5


def test_mosaic_boxes_match_the_pixels_and_the_size_is_the_input_size():
    class Squares(torch.utils.data.Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, index):
            image = torch.zeros(3, 64, 64, dtype=torch.uint8)
            image[:, 20:40, 10 + index : 30 + index] = 255
            return image, {
                "boxes": torch.tensor([[10.0 + index, 20.0, 30.0 + index, 40.0]]),
                "labels": torch.tensor([index]),
            }

    random.seed(3)
    mosaic = Mosaic(Squares(), (64, 64), probability=1.0, min_visible=0.0)
    for index in range(5):
        image, target = mosaic[index]
        assert image.shape == (3, 64, 64)
        bright = image[0] > 127
        drawn = torch.zeros_like(bright)
        for x0, y0, x1, y1 in target["boxes"].round().long().tolist():
            drawn[y0:y1, x0:x1] = True
        assert torch.equal(bright, drawn)  # every box is exactly its square's visible pixels


def test_a_training_image_is_left_alone_by_the_model_resize():
    from gfocal.models import gfl_small

    model = gfl_small(num_classes=1, min_size=96, max_size=96)
    image = torch.randint(0, 256, (3, 70, 130), dtype=torch.uint8)
    target = to_tv_target(
        torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.bool), 70, 130
    )
    for augmentation in (None, Augmentation(scale_range=(0.5, 1.5), color=True)):
        piped, _ = build_transforms(96, 96, augmentation)(tv_tensors.Image(image), target)
        batch, _ = model.transform([piped.as_subclass(torch.Tensor)])
        assert batch.scales == [(1.0, 1.0)] and batch.image_sizes == [(52, 96)]


def test_a_third_of_a_turn_of_hue_maps_red_to_green_to_blue_and_greys_stay():
    colours = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.5, 0.5, 0.5]])  # red, green, grey (rows)
    turned = colours @ hue_rotation_matrix(1 / 3).T
    torch.testing.assert_close(
        turned, torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.5, 0.5, 0.5]]), atol=1e-6, rtol=0
    )
    torch.testing.assert_close(hue_rotation_matrix(0.0), torch.eye(3))


def test_hue_rotation_is_close_to_torchvision_s_hue_shift_and_leaves_boxes_alone():
    from torchvision.transforms.v2 import functional as F

    torch.manual_seed(0)
    image = tv_tensors.Image(torch.randint(60, 190, (3, 40, 50), dtype=torch.uint8))  # no clipping at 0 or 255
    target = to_tv_target(torch.tensor([[1.0, 2.0, 30.0, 20.0]]), torch.tensor([0]), torch.tensor([False]), 40, 50)
    random.seed(3)
    turned, turned_target = RandomHueRotation(0.015)(image, target)
    random.seed(3)
    turns = random.uniform(-0.015, 0.015)
    reference = F.adjust_hue(image, turns)
    assert turned.dtype == torch.uint8 and turned.shape == image.shape
    assert (turned.float() - reference.float()).abs().mean() < 4  # uint8 levels, for a turn of at most 0.015
    assert (turned.float() - image.float()).abs().mean() > 0.5  # it did turn
    assert torch.equal(turned_target["boxes"], target["boxes"])
    torch.testing.assert_close(turned.float().mean(0), image.float().mean(0), atol=1.0, rtol=0)  # brightness kept


def _jittered(augmentation: Augmentation, image: torch.Tensor, seed: int) -> torch.Tensor:
    target = to_tv_target(
        torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.bool), 30, 40
    )
    random.seed(seed)
    torch.manual_seed(seed)
    out, _ = build_transforms(40, 40, augmentation)(tv_tensors.Image(image), target)
    return out.as_subclass(torch.Tensor)


def test_the_default_colour_jitter_draws_as_the_pipeline_did_before_its_strengths_were_settings():
    from torchvision.transforms import v2

    image = torch.randint(0, 256, (3, 30, 40), dtype=torch.uint8)
    before = v2.Compose([v2.ColorJitter(brightness=0.4, saturation=0.7), RandomHueRotation(0.015)])
    for seed in range(3):
        random.seed(seed)
        torch.manual_seed(seed)
        expected = before(tv_tensors.Image(image)).as_subclass(torch.Tensor)
        assert torch.equal(_jittered(Augmentation(hflip=0.0, color=True), image, seed), expected)


def test_contrast_and_grayscale_change_the_colours_and_zero_strengths_change_nothing():
    image = torch.randint(0, 256, (3, 30, 40), dtype=torch.uint8)
    still = Augmentation(hflip=0.0, color=True, color_jitter=(0.0, 0.0, 0.0, 0.0))
    assert torch.equal(_jittered(still, image, 0), image)
    grey = _jittered(Augmentation(hflip=0.0, color=True, color_jitter=(0.0, 0.0, 0.0, 0.0), grayscale=1.0), image, 0)
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2]) and not torch.equal(grey, image)
    contrasted = _jittered(Augmentation(hflip=0.0, color=True, color_jitter=(0.0, 0.9, 0.0, 0.0)), image, 0)
    spread = [float(x.float().std()) for x in (image, contrasted)]
    assert abs(spread[1] - spread[0]) > 1.0  # a contrast factor other than 1 widens or narrows the spread
