"""The one loop that runs a model over a dataset: each image decoded once, in loader workers, in order.

Evaluation, prediction and the analysis tools all call :func:`run_over_images`. Its source is any
dataset of ``(image, target)`` pairs: a labelled :class:`~gfocal.data.DetectionDataset` or
:class:`~gfocal.data.ImageFiles`. ``workers`` processes decode the images; each batch goes, on
``device``, to the caller's ``step`` (the network, or a function of its raw head outputs), and the
loop yields, per image, what the step returned for it with the image it ran on (:class:`LoadedImage`:
its position in the source, the decoded tensor, the source's target). The image is kept, so that a
caller that needs it again (drawing the detections) does not decode the file a second time.

Images reach the step as decoded, at their own size: the model's input transform resizes them by the
rule of :mod:`gfocal.image_geometry`, so every tool feeds the network exactly what ``gfocal predict``
does. A file that :class:`~gfocal.data.ImageFiles` could not decode is skipped with a
:class:`~gfocal.data.DatasetWarning` naming it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from gfocal.data import DatasetError, DatasetWarning, collate_detection

__all__ = ["LoadedImage", "Step", "run_over_images"]

Result = TypeVar("Result")


@dataclass(frozen=True)
class LoadedImage:
    """One image as the loop decoded it.

    index: its position in the source (for a dataset of records, the index into ``records.images``).
    image: uint8 Tensor [3, H, W] RGB on the CPU, as the source gave it.
    target: the source's target; always ``orig_size`` (H, W) of the file, and for a labelled
        dataset its boxes, labels and ``scale_xy`` (see :class:`~gfocal.data.DetectionDataset`).
    """

    index: int
    image: Tensor
    target: dict[str, Any]

    @property
    def original_size(self) -> tuple[int, int]:
        """(height, width) of the file, in pixels."""
        height, width = self.target["orig_size"]
        return int(height), int(width)


#: ``step(images, items)``: the batch's images (uint8 [3, H, W] each, on the loop's device) and the
#: loaded images they come from, to one result per image, in order.
Step = Callable[[list[Tensor], list[LoadedImage]], Sequence[Result]]


def run_over_images(
    source: Dataset,
    step: Step[Result],
    device: str | torch.device = "cpu",
    batch_size: int = 4,
    workers: int = 0,
    indices: Sequence[int] | None = None,
    collate: Callable[[list[Any]], tuple[list[Any], list[dict[str, Any]]]] = collate_detection,
    progress: bool = False,
    desc: str = "images",
) -> Iterator[tuple[LoadedImage, Result]]:
    """Run ``step`` over ``source`` in batches; yield each image with its result, in the order of ``indices``.

    Args:
        source: items ``(image, target)``; an image may be a :class:`~gfocal.data.DatasetError`
            (an :class:`~gfocal.data.ImageFiles` file that does not decode): it is skipped with a warning.
        step: see :data:`Step`; runs without gradients.
        device: where the step's images are moved.
        batch_size: images per step (the last batch may be smaller, and smaller still after skips).
        workers: decoding processes (0: in this process).
        indices: the positions to run, in order (a shard, the first images, the annotated ones);
            None: all of ``source``.
        collate: turns a list of items into ``(images, targets)`` lists.
        progress: show a bar counting images.
        desc: the bar's label.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = list(range(len(source))) if indices is None else list(indices)  # type: ignore[arg-type]
    loader = DataLoader(source, batch_size=batch_size, sampler=order, num_workers=workers, collate_fn=collate)
    with tqdm(total=len(order), desc=desc, unit="img", disable=not progress) as bar:
        # The loader yields batches in the sampler's order, so batch b holds order[b*B : (b+1)*B].
        for start, (images, targets) in zip(range(0, len(order), batch_size), loader):
            items = []
            for index, image, target in zip(order[start : start + batch_size], images, targets):
                if isinstance(image, DatasetError):
                    warnings.warn(f"skipped: {image}", DatasetWarning, stacklevel=2)
                else:
                    items.append(LoadedImage(index, image, target))
            if items:
                with torch.no_grad():
                    results = step([item.image.to(device, non_blocking=True) for item in items], items)
                yield from zip(items, results)
            bar.update(len(images))
