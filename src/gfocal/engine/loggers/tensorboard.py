"""TensorBoard event files in ``out_dir/tensorboard``: ``tensorboard --logdir OUT/tensorboard``.

Per step (SCALARS): ``train/loss`` and each loss term, ``train/lr`` and ``train/images_per_s`` (the writer
queues them and writes from its own thread, so a step waits for no file).

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
  above a score of 0.3 in class colours (:mod:`gfocal.engine.loggers.previews`), the same images each time.

A resumed run purges the points after its checkpoint, which it computes again.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gfocal.engine.events import EvaluationEnded, Event, RunEnded, RunFailed, RunStarted, StepEnded
from gfocal.engine.loggers.extra import require_extra
from gfocal.engine.loggers.previews import Previews
from gfocal.engine.matches import threshold_counts_by_class

if TYPE_CHECKING:
    from gfocal.engine.evaluate import Evaluation

__all__ = ["PR_IOU", "PR_THRESHOLDS", "TensorBoardLogger"]

PR_IOU = 0.5  # a detection "found" its object: the IoU of the suggested score threshold too
PR_THRESHOLDS = np.linspace(0.0, 1.0, 101)  # TensorBoard's curves take at most 127 thresholds, evenly spaced


class TensorBoardLogger:
    """Writes TensorBoard scalars, precision-recall curves and images through ``torch.utils.tensorboard.SummaryWriter``."""

    def __init__(self, out_dir: Path) -> None:
        require_extra("tensorboard", "tensorboard", "TensorBoard")
        self.log_dir = Path(out_dir) / "tensorboard"
        self.writer: Any = None
        self.previews = Previews()

    def on_event(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(self.log_dir, purge_step=event.iteration + 1 if event.iteration else None)
        elif isinstance(event, StepEnded):
            scalars = {"loss": event.loss, **event.losses, "lr": event.lr, "images_per_s": event.images_per_s}
            for name, value in scalars.items():
                self.writer.add_scalar(f"train/{name}", value, event.iteration)
        elif isinstance(event, EvaluationEnded):
            for name, value in event.scalars.items():
                self.writer.add_scalar(f"val/{name}", value, event.iteration)
            if event.evaluation is not None:
                self._pr_curves(event.evaluation, event.iteration)
                for name, image in self.previews.draw(event.evaluation):
                    self.writer.add_image(f"val/images/{name}", image, event.iteration, dataformats="HWC")
        elif isinstance(event, (RunEnded, RunFailed)) and self.writer is not None:
            self.writer.close()

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
