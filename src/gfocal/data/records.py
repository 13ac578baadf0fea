"""The internal representation every reader produces and every consumer reads.

Boxes are ``(x0, y0, x1, y1)`` in absolute pixels of the image as displayed
(after its EXIF orientation), continuous coordinates: a box covering the whole
W x H image is ``(0, 0, W, H)``. Labels are contiguous ``0..C-1``, C =
``len(class_names)``, background excluded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gfocal.data.problems import DatasetError, ProblemReport

__all__ = ["Annotation", "ImageRecord", "DatasetRecords"]


@dataclass(frozen=True)
class Annotation:
    """One ground-truth box.

    Attributes:
        box: ``(x0, y0, x1, y1)``, absolute pixels, x1 > x0 and y1 > y0.
        label: class index in ``0..C-1``.
        id: the dataset's own annotation id (COCO id, ``"file.xml#3"``...), or None.
        iscrowd: COCO crowd region; ignored in training, matched as crowd in evaluation.
        difficult: Pascal VOC difficult flag; ignored in training, as in the references.
        extra: other per-box fields of the source (``ambiguous_edges``, VOC ``truncated``...).
    """

    box: tuple[float, float, float, float]
    label: int
    id: int | str | None = None
    iscrowd: bool = False
    difficult: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ignore(self) -> bool:
        """True when training should ignore this box (crowd or difficult)."""
        return self.iscrowd or self.difficult

    @property
    def area(self) -> float:
        """Box area in square pixels."""
        x0, y0, x1, y1 = self.box
        return (x1 - x0) * (y1 - y0)

    @property
    def evaluation_area(self) -> float:
        """The area COCO evaluation sorts this box by into small / medium / large: the source file's own
        ``area`` when it gave one (a COCO json's, which for COCO itself is the segment's, smaller than the
        box), else the box area. With it, AP small/medium/large compare with published COCO numbers."""
        return float(self.extra.get("area", self.area))


@dataclass(frozen=True)
class ImageRecord:
    """One image and its boxes.

    Attributes:
        path: where the file is on disk.
        width, height: size in pixels as displayed (after EXIF orientation).
        id: the dataset's own image id (COCO id, or the file stem).
        annotations: the boxes; may be empty (a negative image).
        file_name: the image name as written in the dataset.
    """

    path: Path
    width: int
    height: int
    id: int | str
    annotations: list[Annotation]
    file_name: str

    def boxes(self) -> np.ndarray:
        """float32 [M, 4] xyxy absolute pixels."""
        return np.asarray([a.box for a in self.annotations], dtype=np.float32).reshape(-1, 4)

    def labels(self) -> np.ndarray:
        """int64 [M] labels in 0..C-1."""
        return np.asarray([a.label for a in self.annotations], dtype=np.int64)

    def ignore_mask(self) -> np.ndarray:
        """bool [M]: crowd or difficult boxes."""
        return np.asarray([a.ignore for a in self.annotations], dtype=bool)


@dataclass(frozen=True)
class DatasetRecords:
    """A whole dataset, as loaded and validated.

    Attributes:
        images: one record per usable image (skipped ones are in ``problems``).
        class_names: C names; ``label`` i is ``class_names[i]``.
        root: the dataset's location (the COCO json, YOLO yaml or VOC folder).
        format: ``"coco"``, ``"voc"`` or ``"yolo"``.
        problems: what validation found.
        category_ids: the source's category ids per label (COCO), or None.
    """

    images: list[ImageRecord]
    class_names: list[str]
    root: Path
    format: str
    problems: ProblemReport = field(default_factory=ProblemReport)
    category_ids: list[int] | None = None

    @property
    def num_classes(self) -> int:
        """C, background excluded."""
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.images)

    def require_boxes(self, purpose: str) -> None:
        """Raise :class:`DatasetError` unless some image holds a box that is not crowd or difficult.

        Images without boxes are valid negatives, but a dataset without any box cannot be trained on or
        scored: the message says what validation dropped (from ``problems``), with an example record.

        Args:
            purpose: completes "no usable box to ...", e.g. ``"train on"``.
        """
        boxes = sum(len(image.annotations) for image in self.images)
        if any(not ann.ignore for image in self.images for ann in image.annotations):
            return
        if not self.images:
            state = "0 images"
        elif boxes:
            state = f"{len(self.images)} images, their {boxes} boxes all crowd/difficult"
        else:
            state = f"{len(self.images)} images, none with a box"
        problems = self.problems
        if problems.warnings:
            worst = max(problems.warnings, key=problems.warnings.__getitem__)
            why = f"{problems.defects_summary()}. Example: {problems.examples[worst][0]}"
        elif not self.images:
            why = "the dataset lists no images"
        elif boxes:
            why = "crowd and difficult boxes are ignored in training and evaluation"
        else:
            why = "the dataset lists no boxes"
        raise DatasetError(f"{self.root}: no usable box to {purpose} after validation ({state}): {why}")
