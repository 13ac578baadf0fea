"""Training on large images: random tiles, drawn more often where the objects are.

Shape letters: M boxes of an image.

A few large annotated images (aerial scenes, slides, documents) become a training set
of tiles, the way tiled prediction (:mod:`gfocal.tiling`) will see them: the network
trains at the scale it predicts at, instead of on a whole image shrunk until the small
objects vanish. A box a tile cuts keeps the part inside, unless less than
``min_visible`` of it is left (the rule of the zoom-and-crop augmentation,
:func:`gfocal.image_geometry.mostly_outside`): a sliver of an object teaches the wrong box.
"""

from __future__ import annotations

import bisect
import random
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import Dataset

from gfocal.data.dataset import transformed_sample
from gfocal.data.image_io import decode_image
from gfocal.data.records import DatasetRecords
from gfocal.image_geometry import clip_boxes, mostly_outside
from gfocal.tiling.slicing import tile_windows

__all__ = ["TileDataset", "sample_window"]


def sample_window(
    height: int, width: int, tile: int, boxes: torch.Tensor, object_bias: float
) -> tuple[int, int, int, int]:
    """A random tile window ``(x0, y0, x1, y1)`` of a ``height x width`` image.

    With probability ``object_bias`` (and when the image has boxes) the window holds the
    centre of a box drawn uniformly, at a random place in the window; otherwise it lies
    anywhere. Sparse scenes, mostly empty, then still give tiles with objects, and empty
    tiles still teach the background. Randomness comes from Python's ``random``, which
    :class:`gfocal.engine.loader.SeededSamples` seeds per sample.

    Args:
        boxes (Tensor[M, 4]): xyxy boxes of the image, pixels.
        object_bias: in [0, 1].
    """
    tile_h, tile_w = min(tile, height), min(tile, width)
    if len(boxes) and random.random() < object_bias:
        x1, y1, x2, y2 = boxes[random.randrange(len(boxes))].tolist()
        cx, cy = int((x1 + x2) / 2), int((y1 + y2) / 2)
        x0 = random.randint(max(0, cx - tile_w + 1), min(cx, width - tile_w))
        y0 = random.randint(max(0, cy - tile_h + 1), min(cy, height - tile_h))
    else:
        x0, y0 = random.randint(0, width - tile_w), random.randint(0, height - tile_h)
    return x0, y0, x0 + tile_w, y0 + tile_h


class TileDataset(Dataset):
    """Random tiles of the images of a dataset, as :class:`~gfocal.data.DetectionDataset` samples.

    An epoch draws as many tiles from each image as tiled prediction would cut it into
    (:func:`gfocal.tiling.slicing.tile_windows` at ``overlap``), so a large image weighs as
    much as its area. ``dataset[i]`` is ``(image, target)`` as ``DetectionDataset`` gives
    them (:func:`~gfocal.data.dataset.transformed_sample`), for the tile after ``transforms``;
    ``orig_size`` is the tile's size and ``image_id`` the index of the image it was cut from. Crowd and
    difficult boxes are removed, as in ``DetectionDataset(train=True)``.

    Args:
        records: from :func:`gfocal.data.load_dataset`.
        tile: tile side in pixels.
        transforms: the training pipeline applied to each tile (resize to the network input, flips, ...).
        overlap: of the tiling that sets the number of tiles per image.
        object_bias: share of tiles centred on an object (:func:`sample_window`).
        min_visible: a box left with less than this share of its area inside the tile is dropped.
        cached_images: decoded images kept per process (decoding a large image costs more than a step).
    """

    def __init__(
        self,
        records: DatasetRecords,
        tile: int,
        transforms: Callable[..., Any] | None = None,
        overlap: float = 0.2,
        object_bias: float = 0.75,
        min_visible: float = 0.2,
        cached_images: int = 4,
    ) -> None:
        if not 0 <= object_bias <= 1:
            raise ValueError(f"object_bias must be in [0, 1], got {object_bias}")
        self.records, self.tile, self.transforms = records, tile, transforms
        self.object_bias, self.min_visible, self.cached_images = object_bias, min_visible, cached_images
        counts = [len(tile_windows(image.height, image.width, tile, overlap)) for image in records.images]
        self._ends = torch.tensor(counts).cumsum(0).tolist()  # sample i belongs to the first image whose end > i
        self._cache: OrderedDict[int, torch.Tensor] = OrderedDict()

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    def _decoded(self, index: int) -> torch.Tensor:
        if index not in self._cache:
            self._cache[index] = decode_image(self.records.images[index].path)
            if len(self._cache) > self.cached_images:
                self._cache.popitem(last=False)
        self._cache.move_to_end(index)
        return self._cache[index]

    def __getitem__(self, item: int) -> tuple[torch.Tensor, dict[str, Any]]:
        index = bisect.bisect_right(self._ends, item)
        record = self.records.images[index]
        image = self._decoded(index)  # [3, H, W]
        height, width = image.shape[-2:]
        keep = ~torch.as_tensor(record.ignore_mask(), dtype=torch.bool)
        boxes = torch.as_tensor(record.boxes(), dtype=torch.float32).reshape(-1, 4)[keep]  # [M, 4]
        labels = torch.as_tensor(record.labels(), dtype=torch.int64)[keep]
        if (height, width) != (record.height, record.width):  # size taken on trust (check_images="none")
            boxes = boxes * torch.tensor([width / record.width, height / record.height] * 2)
        x0, y0, x1, y1 = sample_window(height, width, self.tile, boxes, self.object_bias)
        size = (y1 - y0, x1 - x0)
        moved = boxes - torch.tensor([x0, y0, x0, y0], dtype=torch.float32)
        inside = ~mostly_outside(moved, size, self.min_visible)
        boxes, labels = clip_boxes(moved[inside], size), labels[inside]
        ignore = torch.zeros(len(labels), dtype=torch.bool)
        tile = image[:, y0:y1, x0:x1].clone()  # a copy: no transform may write into the cached image
        return transformed_sample(tile, boxes, labels, ignore, self.transforms, index)
