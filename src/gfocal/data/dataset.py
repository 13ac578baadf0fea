"""``torch.utils.data.Dataset`` over :class:`DatasetRecords`, in the torchvision detection convention."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from gfocal.data.image_io import decode_image
from gfocal.data.problems import DatasetError
from gfocal.data.records import DatasetRecords
from gfocal.data.transforms import to_tv_target

__all__ = ["DetectionDataset", "ImageFiles", "collate_detection", "transformed_sample"]

Target = dict[str, Any]


class DetectionDataset(Dataset):
    """Images and targets of a validated dataset.

    ``dataset[i]`` is ``(image, target)``:

    - ``image``: uint8 Tensor [3, H, W], RGB, after ``transforms``;
    - ``target["boxes"]``: float32 [M, 4] xyxy absolute pixels in the transformed image;
    - ``target["labels"]``: int64 [M] in 0..C-1;
    - ``target["ignore_boxes"]``: float32 [K, 4] crowd/difficult boxes, moved with the
      image (eval); always empty with ``train=True``, where those boxes are removed
      as in the reference implementations;
    - ``target["image_id"]``: int, index into ``records.images``;
    - ``target["orig_size"]``: ``(h, w)`` of the decoded file (EXIF orientation applied);
    - ``target["scale"]``: float, resize factor applied (output width / file width);
      ``target["scale_xy"]``: ``(sx, sy)`` exact per-axis factors.

    Args:
        records: from :func:`gfocal.data.load_dataset`.
        transforms: a v2 pipeline such as :func:`gfocal.data.transforms.build_transforms`,
            or None for the image as decoded.
        train: drop crowd/difficult boxes entirely.
        cache_bytes: keep decoded images in memory, per process, until they hold this many bytes
            (the first images decoded stay; the others are decoded each time). A training loader's
            workers live for the whole run, so a small set is decoded once instead of once per
            sample: decoding a 400 px PNG cost as much as the rest of its augmentation.
    """

    def __init__(
        self,
        records: DatasetRecords,
        transforms: Callable[..., Any] | None = None,
        train: bool = False,
        cache_bytes: int = 0,
    ) -> None:
        self.records = records
        self.transforms = transforms
        self.train = train
        self.cache_bytes = cache_bytes
        self._cache: dict[int, torch.Tensor] = {}
        self._cached_bytes = 0

    def __len__(self) -> int:
        return len(self.records.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Target]:
        record = self.records.images[index]
        image = self._decoded(index)  # [3, H, W]
        height, width = image.shape[-2:]
        boxes = torch.as_tensor(record.boxes()).reshape(-1, 4)  # [M, 4]
        if (height, width) != (record.height, record.width):  # size taken on trust (check_images="none")
            boxes = boxes * torch.tensor([width / record.width, height / record.height] * 2)
        labels = torch.as_tensor(record.labels())  # [M]
        ignore = torch.as_tensor(record.ignore_mask())  # [M]
        if self.train:
            boxes, labels, ignore = boxes[~ignore], labels[~ignore], ignore[~ignore]
        return transformed_sample(image, boxes, labels, ignore, self.transforms, index)

    def _decoded(self, index: int) -> torch.Tensor:
        cached = self._cache.get(index)
        if cached is not None:
            return cached.clone()  # a copy: no transform may write into the cached image
        image = decode_image(self.records.images[index].path)
        size = image.numel() * image.element_size()
        if self._cached_bytes + size <= self.cache_bytes:
            self._cache[index], self._cached_bytes = image.clone(), self._cached_bytes + size
        return image


class ImageFiles(Dataset):
    """Image files without annotations, in the convention of :class:`DetectionDataset`.

    ``files[i]`` is ``(image, target)``: ``image`` the decoded file (uint8 Tensor [3, H, W], RGB,
    EXIF orientation applied), ``target`` ``{"image_id": i, "orig_size": (H, W)}``. A file that cannot
    be decoded gives its :class:`DatasetError` in place of the image, so that one bad file in a folder
    does not end a long unattended run: the consumer decides to skip it.
    """

    def __init__(self, paths: Sequence[str | os.PathLike[str]]) -> None:
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor | DatasetError, Target]:
        try:
            image = decode_image(self.paths[index])  # [3, H, W]
        except DatasetError as error:
            return error, {"image_id": index}
        return image, {"image_id": index, "orig_size": (int(image.shape[1]), int(image.shape[2]))}


def transformed_sample(
    image: torch.Tensor,
    boxes: torch.Tensor,
    labels: torch.Tensor,
    ignore: torch.Tensor,
    transforms: Callable[..., Any] | None,
    image_id: int,
) -> tuple[torch.Tensor, Target]:
    """One sample as :class:`DetectionDataset` gives it: ``image`` (uint8 [3, H, W]) and its boxes
    (float32 [M, 4] xyxy), labels [M] and ignore mask (bool [M]) through ``transforms``."""
    height, width = image.shape[-2:]
    out_image, target = tv_tensors.Image(image), to_tv_target(boxes, labels, ignore, height, width)
    if transforms is not None:
        out_image, target = transforms(out_image, target)
    keep = ~target["ignore"]
    out_boxes = target["boxes"].as_subclass(torch.Tensor).to(torch.float32)
    sx, sy = out_image.shape[-1] / width, out_image.shape[-2] / height
    return out_image.as_subclass(torch.Tensor), {
        "boxes": out_boxes[keep],
        "labels": target["labels"][keep],
        "ignore_boxes": out_boxes[~keep],
        "image_id": image_id,
        "orig_size": (int(height), int(width)),
        "scale": float(sx),
        "scale_xy": (float(sx), float(sy)),
    }


def collate_detection(batch: list[tuple[torch.Tensor, Target]]) -> tuple[list[torch.Tensor], list[Target]]:
    """Batch of ``(image, target)`` pairs → ``(images, targets)`` lists; images keep their own sizes."""
    images, targets = zip(*batch) if batch else ((), ())
    return list(images), list(targets)
