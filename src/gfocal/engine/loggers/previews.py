"""A few validation images with an evaluation's detections and their ground truth drawn, for a tracker to show.

The same images at every evaluation, so that a run's progress reads from one picture to the next: up to
:data:`PREVIEW_IMAGES` spread evenly over the validation images that hold a box that counts (first and last
included). Each file is decoded once, at the first evaluation, and shrunk to :data:`PREVIEW_SIZE` pixels on
its longer side (a tracker stores every picture of every evaluation); each evaluation then draws on a copy the
ground truth (:func:`gfocal.visualize.draw_ground_truth`: white outlines) and, over it, the detections the
model would return at a score threshold of :data:`PREVIEW_SCORE_THRESHOLD` (``score > threshold``, the model's
rule; class colours with ``name score`` captions). A file that cannot be read is left out with one warning:
a picture is not worth ending a training run for.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from gfocal.data import DatasetError
from gfocal.data.image_io import decode_image
from gfocal.visualize import draw_detections, draw_ground_truth

if TYPE_CHECKING:
    from gfocal.engine.evaluate import Evaluation

__all__ = ["PREVIEW_IMAGES", "PREVIEW_SCORE_THRESHOLD", "PREVIEW_SIZE", "Previews", "preview_indices"]

logger = logging.getLogger(__name__)

PREVIEW_IMAGES = 4
PREVIEW_SIZE = 512  # longer side in pixels: enough to read the boxes, small in a tracker's files
# Quality-focal scores are predicted IoUs, lower than classification confidences: mmdetection shows its
# detections above 0.3 too.
PREVIEW_SCORE_THRESHOLD = 0.3


def preview_indices(records: Any, count: int = PREVIEW_IMAGES) -> list[int]:
    """Indices into ``records.images`` of up to ``count`` images spread evenly over those holding a box that
    counts (not crowd or difficult), first and last included; over all images when none holds one."""
    pool = [i for i, image in enumerate(records.images) if any(not a.ignore for a in image.annotations)]
    pool = pool or list(range(len(records.images)))
    if len(pool) <= count:
        return pool
    return [pool[k] for k in np.linspace(0, len(pool) - 1, count).round().astype(int)]


@dataclass(frozen=True)
class _Shrunk:
    """One preview image as decoded once: its record index, name, pixels and scale from the file's pixels."""

    index: int
    name: str
    image: Image.Image
    scale_xy: tuple[float, float]


class Previews:
    """The preview images of one run's validation set, drawn anew at each evaluation."""

    def __init__(
        self, count: int = PREVIEW_IMAGES, size: int = PREVIEW_SIZE, score_threshold: float = PREVIEW_SCORE_THRESHOLD
    ) -> None:
        self.count, self.size, self.score_threshold = count, size, score_threshold
        self.shrunk: list[_Shrunk] | None = None  # decoded at the first evaluation

    def draw(self, evaluation: Evaluation) -> list[tuple[str, np.ndarray]]:
        """(the image's file name in the dataset, uint8 [H, W, 3] RGB) per preview image, in index order."""
        records = evaluation.records
        if self.shrunk is None:
            shrunk = (self._shrink(records.images[index], index) for index in preview_indices(records, self.count))
            self.shrunk = [preview for preview in shrunk if preview is not None]
        drawn = []
        for preview in self.shrunk:
            scale = torch.tensor(preview.scale_xy * 2)  # [4]: x, y, x, y
            truth = [a.box for a in records.images[preview.index].annotations if not a.ignore]
            canvas = draw_ground_truth(preview.image, torch.tensor(truth, dtype=torch.float32).reshape(-1, 4) * scale)
            found = evaluation.detections.get(preview.index)
            if found is not None:
                kept = found["scores"] > self.score_threshold
                canvas = draw_detections(
                    canvas,
                    torch.as_tensor(found["boxes"][kept], dtype=torch.float32) * scale,
                    torch.as_tensor(found["labels"][kept]),
                    torch.as_tensor(found["scores"][kept]),
                    records.class_names,
                )
            drawn.append((preview.name, np.asarray(canvas)))
        return drawn

    def _shrink(self, record: Any, index: int) -> _Shrunk | None:
        """``record``'s file decoded and shrunk to ``size`` on its longer side; None (and a warning) if unreadable."""
        try:
            # A JPEG decodes straight at a fraction of its size (draft) when that is still ``size`` or more.
            pixels = decode_image(record.path, draft_size=(self.size, self.size))  # [3, H, W]
        except DatasetError as error:
            logger.warning("validation image %s left out of the previews: %s", record.file_name, error)
            return None
        image = Image.fromarray(pixels.permute(1, 2, 0).numpy())
        image.thumbnail((self.size, self.size))  # keeps the aspect ratio, never enlarges
        return _Shrunk(index, record.file_name, image, (image.width / record.width, image.height / record.height))
