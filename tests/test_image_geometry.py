"""The keep-ratio rule, the shared resampling and the way back to original pixels."""

from __future__ import annotations

import pytest
import torch

from gfocal.image_geometry import clip_boxes, fit_size, resize_image, to_original_pixels


@pytest.mark.parametrize(
    ("h", "w", "min_size", "max_size", "expected"),
    [
        (480, 640, 320, 320, (240, 320)),
        (640, 480, 320, 320, (320, 240)),
        (480, 640, 800, 1333, (800, 1067)),
        (200, 1000, 800, 1333, (267, 1333)),
    ],
)
def test_fit_size(h, w, min_size, max_size, expected):
    assert fit_size(h, w, min_size, max_size) == expected


@pytest.mark.parametrize(("h", "w"), [(37, 91), (480, 640), (1000, 3), (333, 333)])
def test_fit_size_of_a_fitted_size_is_itself(h, w):
    fitted = fit_size(h, w, 320, 320)
    assert fit_size(*fitted, 320, 320) == fitted


def test_resize_keeps_the_dtype_and_leaves_a_fitted_image_alone():
    image = torch.randint(0, 256, (3, 40, 60), dtype=torch.uint8)
    assert resize_image(image, (40, 60)) is image
    smaller = resize_image(image, (20, 30))
    assert smaller.dtype == torch.uint8 and smaller.shape == (3, 20, 30)
    # Antialiased: a one-pixel checkerboard reduced 4x averages to grey instead of aliasing to black or white.
    checkerboard = ((torch.arange(64)[:, None] + torch.arange(64)[None, :]) % 2 * 255).to(torch.uint8).expand(3, 64, 64)
    grey = resize_image(checkerboard, (16, 16)).float()
    assert (grey - 127.5).abs().max() < 3


def test_to_original_pixels_divides_by_the_scale_and_clips():
    boxes = torch.tensor([[15.0, 30.0, 60.0, 72.0], [-4.0, 3.0, 200.0, 90.0]])
    back = to_original_pixels(boxes, (1.5, 3.0), (20, 100))
    torch.testing.assert_close(back, torch.tensor([[10.0, 10.0, 40.0, 20.0], [0.0, 1.0, 100.0, 20.0]]))
    assert torch.equal(clip_boxes(back, (20, 100)), back)


def test_mostly_outside_counts_the_visible_share_and_slivers():
    from gfocal.image_geometry import mostly_outside

    boxes = torch.tensor(
        [[-10.0, 0.0, 10.0, 10.0], [-15.0, 0.0, 5.0, 10.0], [0.0, 0.0, 0.5, 10.0], [50.0, 50.0, 60.0, 60.0]]
    )
    # Half visible, a quarter visible, under a pixel wide, entirely outside a 40 x 40 image.
    assert mostly_outside(boxes, (40, 40), min_visible=0.4).tolist() == [False, True, True, True]
