"""TensorBoard event files in ``out_dir/tensorboard``: ``tensorboard --logdir OUT/tensorboard``.

Per step (SCALARS): ``train/loss`` and each loss term, ``train/lr`` and ``train/images_per_s`` (the writer
queues them and writes from its own thread, so a step waits for no file; its queue holds
:data:`_QUEUE` events, as its default of 10 made a step wait for the thread on a busy machine).

Per evaluation, all at the iteration it follows:

- SCALARS: ``val/AP``, ``val/AP50``, ... (every single-number metric).
- PR CURVES at IoU 0.5: ``val/pr_curve/(all classes)`` (every class's detections pooled) and
  ``val/pr_curve/<class>`` per class with ground truth. Read from the evaluation's own matches
  (:func:`gfocal.engine.matches.threshold_counts_by_class`), so a point is the precision and recall of the
  detections the AP scored, kept above one of 101 score thresholds 0.00, 0.01, ..., 1.00 (``score >
  threshold``, the model's rule; precision 1 where none is kept); true negatives are 0, a detector has none.
  These are the F1 curves of ``gfocal eval --report`` in precision and recall; the AP is the area under the
  report's PR curves, ranked detection by detection rather than on this grid.
- IMAGES: ``val/images/<file>``, a few validation images with the ground truth in white and the detections
  above a score of 0.3 in class colours (:mod:`gfocal.engine.loggers.previews`), the same images each time;
  stored as JPEG (``SummaryWriter.add_image`` stores PNG, which took 15 times longer to encode, 0.15 s a
  400 px aerial tile, and 4 times the bytes). Drawn at the first evaluation, then at an evaluation at least
  :data:`PREVIEW_EVERY_S` seconds after the last ones, and for the last evaluation when the run ends: the
  captions cost about 0.4 ms a box (of CPU; four 400 px tiles with some 70 boxes each took 0.13 s), which
  a small validation set evaluated every few steps would otherwise pay each time (over 1% of the steps of
  ``benchmarks/logging_cost.py``'s run, 3 steps an evaluation). A long epoch has them at every evaluation.

A resumed run purges the points after its checkpoint, which it computes again.
"""

from __future__ import annotations

import io
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from gfocal.engine.events import EvaluationEnded, Event, RunEnded, RunFailed, RunStarted, StepEnded
from gfocal.engine.loggers.extra import require_extra
from gfocal.engine.loggers.previews import Previews
from gfocal.engine.matches import threshold_counts_by_class

if TYPE_CHECKING:
    from gfocal.engine.evaluate import Evaluation

__all__ = ["PR_IOU", "PR_THRESHOLDS", "TensorBoardLogger"]

PR_IOU = 0.5  # a detection "found" its object: the IoU of the suggested score threshold too
PR_THRESHOLDS = np.linspace(0.0, 1.0, 101)  # TensorBoard's curves take at most 127 thresholds, evenly spaced
_QUEUE = 1000  # events the writer's thread may have pending; a few hundred bytes each, an image some 50 kB
_JPEG_QUALITY = 90  # with full-resolution colour (no 4:2:0 subsampling): thin coloured lines stay crisp
PREVIEW_EVERY_S = 60.0  # previews at most this often (and of the last evaluation), see the module doc


class TensorBoardLogger:
    """Writes TensorBoard scalars, precision-recall curves and images through ``torch.utils.tensorboard.SummaryWriter``."""

    def __init__(self, out_dir: Path) -> None:
        require_extra("tensorboard", "tensorboard", "TensorBoard")
        self.log_dir = Path(out_dir) / "tensorboard"
        self.writer: Any = None
        self.previews = Previews()
        self.pending: tuple[Evaluation, int] | None = None  # the latest evaluation whose previews are not drawn
        self.previews_drawn_at = -math.inf  # time.perf_counter() seconds

    def on_event(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            from torch.utils.tensorboard import SummaryWriter

            purge_step = event.iteration + 1 if event.iteration else None
            self.writer = SummaryWriter(self.log_dir, purge_step=purge_step, max_queue=_QUEUE)
        elif isinstance(event, StepEnded):
            scalars = {"loss": event.loss, **event.losses, "lr": event.lr, "images_per_s": event.images_per_s}
            for name, value in scalars.items():
                self.writer.add_scalar(f"train/{name}", value, event.iteration)
        elif isinstance(event, EvaluationEnded):
            for name, value in event.scalars.items():
                self.writer.add_scalar(f"val/{name}", value, event.iteration)
            if event.evaluation is not None:
                self._pr_curves(event.evaluation, event.iteration)
                self.pending = (event.evaluation, event.iteration)
                if time.perf_counter() - self.previews_drawn_at >= PREVIEW_EVERY_S:
                    self._previews(*self.pending)
        elif isinstance(event, RunEnded) and self.pending is not None:
            self._previews(*self.pending)
        if isinstance(event, (RunEnded, RunFailed)) and self.writer is not None:
            self.writer.close()

    def _previews(self, evaluation: Evaluation, iteration: int) -> None:
        """``evaluation``'s preview images, at ``iteration``."""
        for name, image in self.previews.draw(evaluation):
            self._image(f"val/images/{name}", image, iteration)
        self.pending, self.previews_drawn_at = None, time.perf_counter()

    def _image(self, tag: str, image: np.ndarray, iteration: int) -> None:
        """``image`` (uint8 [H, W, 3] RGB) as a JPEG image summary."""
        from tensorboard.compat.proto.summary_pb2 import Summary

        encoded = io.BytesIO()
        Image.fromarray(image).save(encoded, format="JPEG", quality=_JPEG_QUALITY, subsampling=0)
        height, width = image.shape[:2]
        picture = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=encoded.getvalue())
        # The writer's own file writer: SummaryWriter has no public call for an image already encoded.
        self.writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=picture)]), iteration)

    def _pr_curves(self, evaluation: Evaluation, iteration: int) -> None:
        overall, per_class = threshold_counts_by_class(
            evaluation.coco_eval, evaluation.records.class_names, PR_IOU, PR_THRESHOLDS
        )
        for name, counts in {"(all classes)": overall, **per_class}.items():
            self.writer.add_pr_curve_raw(
                f"val/pr_curve/{name}",
                counts.true_positives,
                counts.false_positives,
                np.zeros(len(PR_THRESHOLDS)),  # a detector has no true negatives
                counts.false_negatives,
                counts.precision,
                counts.recall,
                iteration,
                num_thresholds=len(PR_THRESHOLDS),
            )
