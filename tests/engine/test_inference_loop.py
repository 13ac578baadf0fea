"""The one loop over images: order and identity kept across workers, skips and the last partial batch."""

import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset

from gfocal.data import DatasetWarning, ImageFiles
from gfocal.data.image_io import decode_image
from gfocal.engine.inference_loop import run_over_images


class Numbered(Dataset):
    """Item i: an image of i+1 rows filled with the value i, and its target."""

    def __len__(self):
        return 11

    def __getitem__(self, index):
        image = torch.full((3, index + 1, 4), index, dtype=torch.uint8)
        return image, {"image_id": index, "orig_size": (index + 1, 4)}


def test_order_and_identity_with_workers_and_a_partial_last_batch():
    batches = []

    def step(images, items):
        batches.append(len(images))
        return [int(image[0, 0, 0]) for image in images]  # what the step saw, per image

    order = [10, 3, 7, 0, 5, 1, 9]  # a shard in its own order: 7 images, batches of 3, 3, 1
    run = list(run_over_images(Numbered(), step, batch_size=3, workers=2, indices=order))
    assert [item.index for item, _ in run] == order
    assert [seen for _, seen in run] == order  # each result belongs to the image it is yielded with
    assert all(item.original_size == (item.index + 1, 4) and item.image.shape[1] == item.index + 1 for item, _ in run)
    assert batches == [3, 3, 1]


def test_image_files_decode_in_workers_and_skip_unreadable_files(tmp_path):
    paths = []
    for k in range(5):
        path = tmp_path / f"{k}.png"
        Image.new("RGB", (20 + k, 10), (k, 0, 0)).save(path)
        paths.append(path)
    paths[2].write_text("not an image")
    with pytest.warns(DatasetWarning, match=r"skipped: .*2\.png"):
        run = list(run_over_images(ImageFiles(paths), lambda images, items: images, batch_size=2, workers=2))
    assert [item.index for item, _ in run] == [0, 1, 3, 4]
    for item, fed in run:
        assert torch.equal(item.image, decode_image(paths[item.index])) and torch.equal(fed, item.image)
        assert item.original_size == (10, 20 + item.index)


def test_batch_size_must_be_positive():
    with pytest.raises(ValueError, match="batch_size"):
        next(run_over_images(Numbered(), lambda images, items: images, batch_size=0))
