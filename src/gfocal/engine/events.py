"""What a training run tells its subscribers: typed events, and the :class:`Callback` protocol that receives them.

The training loop (:mod:`gfocal.engine.trainer`) emits, on the main process only and in this order:
:class:`RunStarted`, then per optimiser step :class:`StepEnded`, per evaluation :class:`EvaluationEnded`, per
checkpoint written :class:`CheckpointSaved`, once the step time is measured :class:`FirstStepTimed` and
:class:`PlanMade` (the time budget's plan, or the schedule's), and last :class:`RunEnded` (or
:class:`RunFailed` when an error ends the run). Everything that records a run is a subscriber: the ``metrics.jsonl`` log and its curves
(:mod:`gfocal.engine.metrics`), the progress bar (:mod:`gfocal.engine.progress`), the trackers of
:mod:`gfocal.engine.loggers` and a caller's ``train(config, callbacks=[...])``.

Events carry plain Python values that already live on the host (the loop synchronises once per step for the
finiteness check), so a subscriber costs no extra device synchronisation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from gfocal.engine.evaluate import Evaluation

__all__ = [
    "Callback",
    "CheckpointSaved",
    "EvaluationEnded",
    "Event",
    "EventBus",
    "FirstStepTimed",
    "PlanMade",
    "RunEnded",
    "RunFailed",
    "RunStarted",
    "StepEnded",
    "StopReason",
]

logger = logging.getLogger(__name__)

#: Why a run ended: its schedule ran out, its time budget squeezed the schedule, or the validation AP stopped
#: improving for ``patience`` evaluations.
StopReason = Literal["finished", "time budget", "early stop"]


@dataclass(frozen=True)
class RunStarted:
    """A run (or a resumed session of one) is about to take its first step.

    Attributes:
        config: the resolved :class:`TrainConfig` as plain data (``TrainConfig.to_dict()``).
        out_dir: the run folder.
        iteration: steps already taken (0 for a fresh run; the checkpoint's for a resumed one).
        steps_per_epoch: optimiser steps in one pass over the training set.
        setup: what the run trains with: ``batch_size`` (images per step, all processes),
            ``requested_batch_size``, ``train_images``, ``world_size``, ``base_lr`` (before the schedule).
    """

    config: dict[str, Any]
    out_dir: Path
    iteration: int
    steps_per_epoch: int
    setup: dict[str, Any]


@dataclass(frozen=True)
class StepEnded:
    """One optimiser step was taken.

    Attributes:
        iteration: steps completed (1-based: the first step ends iteration 1).
        epoch: epochs completed, fractional mid-epoch.
        total_iterations: the steps the schedule plans now (a time budget may change it while running).
        losses: every term of the model's loss dict (averaged over processes), e.g. ``loss_qfl``.
        loss: their sum, the loss that was back-propagated.
        lr: the learning rate of this step.
        step_s: wall seconds of the step, data loading included.
        data_s: of which waiting for the batch.
        images_per_s: images (all processes) per second of this step.
        counters: the model's training counters (``last_stats``: positives, share at the last bin), and
            ``grad_norm`` when gradients are clipped; never summed into the loss.
    """

    iteration: int
    epoch: float
    total_iterations: int
    losses: dict[str, float]
    loss: float
    lr: float
    step_s: float
    data_s: float
    images_per_s: float
    counters: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class EvaluationEnded:
    """The validation set was evaluated.

    Attributes:
        iteration, epoch: as in :class:`StepEnded`, at the evaluation.
        metrics: the evaluation's results (``gfocal.engine.evaluate_detections``: ``AP``, ``AP50``, ``AP75``,
            ``APs``, ..., ``AP_per_iou``), without the per-class table.
        seconds: wall seconds the evaluation took.
        improved: its AP is the best so far (``best.pt`` is written with it).
        evaluation: what the metrics were computed from (:class:`gfocal.engine.evaluate.Evaluation`): the
            validation ``records``, every image's ``detections`` in original pixels and pycocotools'
            ``coco_eval`` that matched them, for subscribers that draw curves or images from the very
            detections the AP scored (the TensorBoard tracker's PR curves and previews). References, not
            copies: they cost nothing to pass, but a subscriber that keeps every event keeps every evaluation.
            None for an event made without one (a test's, a replay's).
    """

    iteration: int
    epoch: float
    metrics: dict[str, Any]
    seconds: float
    improved: bool
    evaluation: Evaluation | None = field(default=None, repr=False, compare=False)

    @property
    def scalars(self) -> dict[str, float]:
        """The metrics that are single numbers (what a tracker plots)."""
        return {k: float(v) for k, v in self.metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


@dataclass(frozen=True)
class CheckpointSaved:
    """A checkpoint file was written: ``kind`` "last" (``last.pt``) or "best" (``best.pt``, a new best AP)."""

    path: Path
    kind: Literal["last", "best"]
    iteration: int


@dataclass(frozen=True)
class RunEnded:
    """The run is over and its weights are exported.

    Attributes:
        weights: ``model.safetensors``, the final weights (None for models other than ``gfocal.models``'s).
        best_weights: ``model_best.safetensors``, the best validation AP's weights (None without evaluation).
        iterations: steps taken in total.
        reason: why it ended (:data:`StopReason`).
        best_ap: the best validation AP (None without evaluation).
    """

    weights: Path | None
    best_weights: Path | None
    iterations: int
    reason: StopReason
    best_ap: float | None


@dataclass(frozen=True)
class RunFailed:
    """An error ended the run (divergence, a full disk, an interrupt); ``error`` is its message."""

    iteration: int
    error: str


@dataclass(frozen=True)
class FirstStepTimed:
    """The session's first step is done; it is slower than the rest (memory, kernels warming up)."""

    iteration: int
    step_s: float


@dataclass(frozen=True)
class PlanMade:
    """The step time has settled: how long the run will take (once per session, a few steps in).

    Attributes:
        iteration: steps completed when the plan was made.
        iterations: steps the run will take in all (a time budget's plan, or the schedule's).
        epochs: the same in passes over the training set.
        seconds_per_step: the measured mean step.
        eta_s: seconds until the run ends, evaluations included (sooner if ``patience`` stops it).
        evaluations: evaluations still to come, the final one included (by time in a budgeted run: those
            that fit what is left of it).
    """

    iteration: int
    iterations: int
    epochs: float
    seconds_per_step: float
    eta_s: float
    evaluations: int


Event = RunStarted | StepEnded | EvaluationEnded | CheckpointSaved | FirstStepTimed | PlanMade | RunEnded | RunFailed


class Callback(Protocol):
    """A subscriber: receives every event of a run, in order, on the main process.

    Look at the events you need and ignore the rest::

        class PrintAP:
            def on_event(self, event: Event) -> None:
                if isinstance(event, EvaluationEnded):
                    print(event.iteration, event.metrics["AP"])
    """

    def on_event(self, event: Event) -> None: ...


class EventBus:
    """Hands each event to every subscriber, in order; silent on processes other than the main one."""

    def __init__(self, subscribers: Iterable[Callback], enabled: bool = True) -> None:
        self.subscribers, self.enabled = list(subscribers), enabled

    def emit(self, event: Event) -> float:
        """Deliver ``event``; returns the seconds the subscribers took (the loop leaves them out of its step time)."""
        if not self.enabled:
            return 0.0
        started = time.perf_counter()
        for subscriber in self.subscribers:
            subscriber.on_event(event)
        return time.perf_counter() - started

    def emit_failure(self, event: RunFailed) -> None:
        """Tell every subscriber the run failed; a subscriber's own error is logged, never hides the run's."""
        if not self.enabled:
            return
        for subscriber in self.subscribers:
            try:
                subscriber.on_event(event)
            except Exception:  # the run's error is the one to raise
                logger.exception("%s failed while closing a failed run", type(subscriber).__name__)
