"""Decoding: every PIL mode becomes 8-bit RGB correctly; EXIF orientation is applied."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from gfocal.data.image_io import decode_image, probe_image
from support import files


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("L", 90),
        ("LA", 90),
        ("RGBA", 90),
        ("P", None),
        ("1", 255),
        ("CMYK", None),
        ("I;16", round(40000 / 65535 * 255)),
    ],
)
def test_decode_any_mode_gives_rgb_uint8(tmp_path, mode, expected):
    path = files.image(tmp_path / f"im_{mode.replace(';', '')}.{'tif' if mode == 'CMYK' else 'png'}", (6, 4), mode)
    image = decode_image(path)
    assert image.shape == (3, 4, 6) and image.dtype == torch.uint8
    if expected is not None:
        assert (image == expected).all()
    assert probe_image(path).mode == mode


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    ramp = np.linspace(0, 65535, 8, dtype=np.uint16).reshape(1, 8).repeat(2, axis=0)
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    image = decode_image(tmp_path / "ramp.png")
    np.testing.assert_array_equal(image[0, 0].numpy(), np.round(ramp[0] / 65535 * 255).astype(np.uint8))


def test_palette_with_transparency(tmp_path):
    im = Image.new("P", (4, 4), 1)
    im.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    im.info["transparency"] = 0
    im.save(tmp_path / "p.png", transparency=0)
    assert decode_image(tmp_path / "p.png")[:, 0, 0].tolist() == [200, 100, 50]


def test_exif_orientation_is_applied(tmp_path):
    array = np.zeros((20, 40, 3), dtype=np.uint8)
    array[:, :10] = 255  # white on the left
    im = Image.fromarray(array)
    exif = im.getexif()
    exif[0x0112] = 6  # displayed rotated 90° clockwise: the white band goes to the top
    im.save(tmp_path / "r.png", exif=exif)
    image = decode_image(tmp_path / "r.png")
    assert image.shape == (3, 40, 20)
    assert (image[:, :10] == 255).all() and (image[:, 12:] == 0).all()
    info = probe_image(tmp_path / "r.png")
    assert (info.width, info.height, info.orientation) == (20, 40, 6)
