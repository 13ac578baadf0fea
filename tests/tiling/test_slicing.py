"""Tile windows cover the image, overlap as asked, and keep one size."""

import pytest
import torch

from gfocal.tiling import tile_windows
from gfocal.tiling.slicing import tile_starts


@pytest.mark.parametrize("length,tile,overlap", [(1000, 256, 0.2), (257, 256, 0.0), (4096, 512, 0.25), (700, 100, 0.5)])
def test_tiles_cover_with_the_overlap_asked(length, tile, overlap):
    starts = tile_starts(length, tile, overlap)
    assert starts[0] == 0 and starts[-1] == length - tile
    shared = [a + tile - b for a, b in zip(starts, starts[1:])]
    assert min(shared) >= tile * overlap - 1  # rounding the spread offsets may take one pixel
    assert all(b > a for a, b in zip(starts, starts[1:]))


def test_image_smaller_than_a_tile_is_one_tile():
    assert tile_windows(100, 300, 512, 0.2).tolist() == [[0, 0, 300, 100]]


def test_windows_are_row_major_and_equal_sized():
    windows = tile_windows(600, 1000, 256, 0.2)
    assert ((windows[:, 2:] - windows[:, :2]) == 256).all()
    assert windows[:, 1].tolist() == sorted(windows[:, 1].tolist())
    covered = torch.zeros(600, 1000, dtype=torch.bool)
    for x0, y0, x1, y1 in windows.tolist():
        covered[y0:y1, x0:x1] = True
    assert covered.all()


@pytest.mark.parametrize("overlap", [-0.1, 1.0])
def test_bad_overlap_is_an_error(overlap):
    with pytest.raises(ValueError, match="overlap"):
        tile_starts(1000, 256, overlap)
