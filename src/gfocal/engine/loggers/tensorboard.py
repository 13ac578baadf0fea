"""TensorBoard event files in ``out_dir/tensorboard``: ``tensorboard --logdir OUT/tensorboard``.

Scalars: ``train/loss`` and each loss term, ``train/lr`` and ``train/images_per_s`` per step (the writer
queues them and writes from its own thread, so a step waits for no file); ``val/AP``, ``val/AP50``, ... per
evaluation. A resumed run purges the points after its checkpoint, which it computes again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gfocal.engine.events import EvaluationEnded, Event, RunEnded, RunFailed, RunStarted, StepEnded
from gfocal.engine.loggers.extra import require_extra

__all__ = ["TensorBoardLogger"]


class TensorBoardLogger:
    """Writes TensorBoard scalars through ``torch.utils.tensorboard.SummaryWriter``."""

    def __init__(self, out_dir: Path) -> None:
        require_extra("tensorboard", "tensorboard", "TensorBoard")
        self.log_dir = Path(out_dir) / "tensorboard"
        self.writer: Any = None

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
        elif isinstance(event, (RunEnded, RunFailed)) and self.writer is not None:
            self.writer.close()
