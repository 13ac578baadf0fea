"""Training progress for the person watching: a bar per epoch on a terminal, else a log line every minute; the
first step's time and the plan, with a warning when ``patience`` is longer than the evaluations planned."""

from __future__ import annotations

import logging
import math
import sys
import time

from tqdm import tqdm

from gfocal.engine.events import (
    EvaluationEnded,
    Event,
    FirstStepTimed,
    PlanMade,
    RunEnded,
    RunFailed,
    RunStarted,
    StepEnded,
)

__all__ = ["Progress"]

logger = logging.getLogger(__name__)

_LINE_EVERY_S = 60.0  # a progress line this often when stderr is not a terminal (a log file has no bar)


class Progress:
    """A subscriber (:mod:`gfocal.engine.events`) that shows where the run is."""

    def __init__(self, terminal: bool | None = None) -> None:
        self.terminal = sys.stderr.isatty() if terminal is None else terminal
        self.steps_per_epoch = 1
        self.bar: tqdm | None = None
        self.bar_epoch = -1
        self.last_line = time.perf_counter()
        self.since_line: list[float] = []  # step seconds since the last line
        self.patience = 0
        self.since_best = -1  # evaluations without a better AP, as the trainer counts them; -1: none yet
        self.budgeted = self.resumed = False

    def on_event(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.steps_per_epoch = event.steps_per_epoch
            self.patience = event.config.get("patience") or 0
            self.budgeted = event.config.get("time_budget_minutes") is not None
            self.resumed = event.iteration > 0  # its evaluations since the best are not known here
        elif isinstance(event, StepEnded):
            self._bar(event) if self.terminal else self._line(event)
        elif isinstance(event, FirstStepTimed):
            logger.info(
                "first step: %.1f s (the first steps are slower while memory and kernels warm up)", event.step_s
            )
        elif isinstance(event, EvaluationEnded):
            self.since_best = 0 if event.improved else self.since_best + 1
        elif isinstance(event, PlanMade):
            self._plan(event)
        elif isinstance(event, (RunEnded, RunFailed)) and self.bar is not None:
            self.bar.close()

    def _plan(self, event: PlanMade) -> None:
        evaluations = f"{event.evaluations} evaluation{'' if event.evaluations == 1 else 's'}"
        logger.info(
            "plan: %d iterations (%.1f epochs) at %.2f s each, %s to come; done in about %s%s",
            event.iterations,
            event.epochs,
            event.seconds_per_step,
            evaluations,
            clock_time(event.eta_s),
            f", sooner if patience {self.patience} stops it" if self.patience else "",
        )
        # Evaluations without a better AP the run can still reach: those so far and those before the final one
        # (which ends the run anyway); since_best -1 takes off the first to come when none came yet (the best).
        reachable = self.since_best + event.evaluations - 1
        if self.patience and not self.resumed and event.evaluations and reachable < self.patience:
            more = "raise --set eval_share" if self.budgeted else "lower --set eval_interval"
            logger.warning(
                "patience %d cannot stop this run early: %d evaluations are to come, the final one included; "
                "lower --patience or %s to evaluate more often",
                self.patience,
                event.evaluations,
                more,
            )

    def _bar(self, event: StepEnded) -> None:
        epoch, done = divmod(event.iteration - 1, self.steps_per_epoch)
        if self.bar is None or epoch != self.bar_epoch:  # a bar per epoch; a resumed run starts mid-epoch
            if self.bar is not None:
                self.bar.close()
            epochs = math.ceil(event.total_iterations / self.steps_per_epoch)
            self.bar = tqdm(
                total=self.steps_per_epoch,
                initial=done,
                desc=f"epoch {epoch + 1}/{epochs}",
                dynamic_ncols=True,
                leave=False,
            )
            self.bar_epoch = epoch
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{event.loss:.4f}", lr=f"{event.lr:.2e}", refresh=False)
        if done + 1 == self.steps_per_epoch or event.iteration >= event.total_iterations:
            self.bar.close()  # before the epoch end's evaluation and its log lines
            self.bar = None

    def _line(self, event: StepEnded) -> None:
        self.since_line.append(event.step_s)
        if time.perf_counter() - self.last_line < _LINE_EVERY_S:
            return
        logger.info(
            "iteration %d/%d, loss %.4f, %.2f s/step",
            event.iteration,
            event.total_iterations,
            event.loss,
            sum(self.since_line) / len(self.since_line),
        )
        self.last_line, self.since_line = time.perf_counter(), []


def clock_time(seconds: float) -> str:
    """``H:MM:SS`` of a duration in seconds."""
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60:d}:{minutes % 60:02d}:{secs:02d}"
