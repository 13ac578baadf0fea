"""Mosaic augmentation: four training images tiled 2 x 2 around a random centre, cropped to one input.

Each tile is a sample of the wrapped dataset, so it has been through that dataset's
own pipeline (resize or zoom-and-crop, flips, colour). Only whole-pixel placement
happens here (no resampling), so boxes move by integer offsets. Randomness comes
from Python's ``random``, which :class:`gfocal.engine.loader.SeededSamples` seeds
per sample: a run resumes with the same mosaics.
"""

from __future__ import annotations

import random
from typing import Any

import torch
from torch.utils.data import Dataset

from gfocal.image_geometry import clip_boxes, mostly_outside

__all__ = ["Mosaic"]


class Mosaic(Dataset):
    """With probability ``probability``, item i is a mosaic of sample i and three random others.

    Args:
        dataset: yields ``(uint8 image [3, h, w], target)`` as :class:`gfocal.data.DetectionDataset`
            does, every image at most ``size`` (the pipeline's fitted size).
        size: ``(H, W)`` of the output, the model's input size.
        probability: share of items that are mosaics; the rest pass through unchanged.
        min_visible: a box the final crop leaves less than this fraction of is dropped.
    """

    def __init__(
        self, dataset: Dataset, size: tuple[int, int], probability: float = 1.0, min_visible: float = 0.2
    ) -> None:
        if not 0 <= probability <= 1:
            raise ValueError(f"mosaic probability must be in [0, 1], got {probability}")
        self.dataset, self.size, self.probability, self.min_visible = dataset, size, probability, min_visible

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> Any:
        # Expose the wrapped dataset's attributes (e.g. ``records``), as the trainer reads them.
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, Any]]:
        if random.random() >= self.probability:
            return self.dataset[index]
        others = [random.randrange(len(self)) for _ in range(3)]
        tiles = [self.dataset[i] for i in (index, *others)]
        return self._compose(tiles, index)

    def _compose(
        self, tiles: list[tuple[torch.Tensor, dict[str, Any]]], index: int
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        height, width = self.size
        canvas = torch.zeros(3, 2 * height, 2 * width, dtype=torch.uint8)
        # The tiles meet at a centre drawn from the middle half of the canvas.
        cy, cx = random.randint(height // 2, 3 * height // 2), random.randint(width // 2, 3 * width // 2)
        boxes, labels = [], []
        for corner, (image, target) in enumerate(tiles):
            h, w = image.shape[-2:]
            top = cy - h if corner < 2 else cy
            left = cx - w if corner % 2 == 0 else cx
            y0, x0 = max(top, 0), max(left, 0)
            y1, x1 = min(top + h, 2 * height), min(left + w, 2 * width)
            canvas[:, y0:y1, x0:x1] = image[:, y0 - top : y1 - top, x0 - left : x1 - left]
            boxes.append(target["boxes"] + torch.tensor([left, top, left, top], dtype=torch.float32))
            labels.append(target["labels"])
        # The output window is centred on the tiles' meeting point, as far as the canvas allows.
        top, left = min(max(cy - height // 2, 0), height), min(max(cx - width // 2, 0), width)
        image = canvas[:, top : top + height, left : left + width].contiguous()
        shifted = torch.cat(boxes) - torch.tensor([left, top, left, top], dtype=torch.float32)  # [M, 4]
        visible = clip_boxes(shifted, (height, width))
        keep = ~mostly_outside(shifted, (height, width), self.min_visible)
        return image, {
            "boxes": visible[keep],
            "labels": torch.cat(labels)[keep],
            "ignore_boxes": torch.zeros(0, 4),
            "image_id": index,
            "orig_size": (height, width),
            "scale": 1.0,
            "scale_xy": (1.0, 1.0),
        }
