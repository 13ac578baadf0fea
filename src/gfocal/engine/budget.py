"""Planning a run against the clock: steps that fit a time budget, evaluations by time, the ETA.

A budgeted run measures its time per training step (evaluations left out) from
its first steps on and re-plans at every step:

* with ``epochs`` unset it *fills* the budget: the learning-rate schedule (warm-up,
  decay) is stretched or squeezed to the number of steps that fit;
* with ``epochs`` set the budget is a cap: the schedule is only ever squeezed.

Either way, evaluations before the last one happen by time, so that together they
cost about ``eval_share`` of the budget, and the final evaluation and the save are
kept back from the training time, so that the run ends within its budget.

Early stopping (``patience``) changes no plan: the plan only ever bounds the run from above, and a run
that stops early ends sooner with its last evaluation and save already made. What it changes is the
learning rate: the schedule was planned over the whole budget, so an early-stopped run ends before its
decay does (documented with ``TrainConfig.patience``). The plan counts the evaluations to come
(:func:`evaluations_left`), so the progress log can say when a patience is longer than the run's
evaluations allow (evaluations by time may be few in a short budget).
"""

from __future__ import annotations

import math
from typing import Any

from gfocal.engine.run import Run
from gfocal.engine.schedule import LRSchedule, fit_to_budget

__all__ = [
    "budget_s",
    "estimated_eval_s",
    "evaluation_due",
    "evaluations_left",
    "reserve_s",
    "replan",
    "eta_s",
    "plan_summary",
]

# Inference is about a third of a training step per image; decoding and COCO scoring add to it.
_EVAL_SHARE_OF_STEP = 0.5
_MAX_EVALUATIONS = 50  # at most this many evaluations in a budgeted run, however fast they are


def budget_s(run: Run) -> float | None:
    minutes = run.config.time_budget_minutes
    return None if minutes is None else minutes * 60


def estimated_eval_s(run: Run, seconds_per_step: float) -> float:
    """Seconds one evaluation takes: the last one measured, else an estimate from the training step time."""
    if run.data.val is None:
        return 0.0
    if run.last_eval_s is not None:
        return run.last_eval_s
    return 0.25 + _network_inputs(run) * seconds_per_step / run.sampler.batch_size * _EVAL_SHARE_OF_STEP


def _network_inputs(run: Run) -> int:
    """Inputs one evaluation runs through the network: each validation image, or with ``tile`` each of its
    tiles (a 2400 px image cut into 416 px tiles is 49 inputs, not one)."""
    tile = run.config.tile
    if tile is None:
        return len(run.data.val)  # type: ignore[arg-type]
    from gfocal.tiling.slicing import tile_starts

    overlap = run.config.tile_overlap
    return sum(
        len(tile_starts(image.height, tile, overlap)) * len(tile_starts(image.width, tile, overlap))
        for image in run.data.val_records.images  # type: ignore[union-attr]
    )


def _eval_interval_s(run: Run, eval_s: float) -> float:
    """Training seconds between evaluations so that they cost ``eval_share`` of the budget."""
    budget = budget_s(run) or 0.0
    share = run.config.eval_share
    return math.inf if share == 0 else max(eval_s / share, budget / _MAX_EVALUATIONS)


def evaluation_due(run: Run, epoch: int, final: bool, seconds_per_step: float) -> bool:
    """Evaluate at the end of this epoch? Always at the end; by time in a budgeted run, else every ``eval_interval`` epochs."""
    if run.data.val is None:
        return False
    if final:
        return True
    if budget_s(run) is None:
        interval = run.config.eval_interval
        return interval > 0 and (epoch + 1) % interval == 0
    since = run.clock.elapsed() - run.last_eval_end_s
    return since >= _eval_interval_s(run, estimated_eval_s(run, seconds_per_step))


def _periodic_evaluations(run: Run, eval_s: float) -> int:
    """Evaluations by time that fit what is left of the budget, the final one not counted."""
    left = max((budget_s(run) or 0.0) - run.clock.elapsed(), 0.0)
    return math.floor(left / _eval_interval_s(run, eval_s)) if eval_s else 0


def evaluations_left(run: Run, seconds_per_step: float) -> int:
    """Evaluations still to come, the final one included: by time in a budgeted run (those that fit what is left
    of it), else at every ``eval_interval``-th epoch end; 0 without a validation set."""
    if run.data.val is None:
        return 0
    if budget_s(run) is not None:
        return _periodic_evaluations(run, estimated_eval_s(run, seconds_per_step)) + 1
    interval = run.config.eval_interval
    last = math.ceil(run.schedule.total_iters / run.sampler.batches_per_epoch) - 1  # its end is the final one
    periodic = range(run.iteration // run.sampler.batches_per_epoch, last)  # epochs whose end is still to come
    return sum(interval > 0 and (epoch + 1) % interval == 0 for epoch in periodic) + 1


def reserve_s(run: Run, seconds_per_step: float) -> float:
    """Seconds to keep back from training: the evaluations still to come and the final save and export."""
    eval_s = estimated_eval_s(run, seconds_per_step)
    periodic = _periodic_evaluations(run, eval_s)
    # 20% slack on the final evaluation; last.pt (and best.pt) and two weight files at the end.
    return 1.2 * eval_s + periodic * eval_s + 3 * run.last_save_s


def replan(run: Run, seconds_per_step: float) -> LRSchedule:
    """The schedule that fits what is left of the budget at the measured speed."""
    return fit_to_budget(
        run.planned,
        run.iteration,
        run.clock.elapsed(),
        seconds_per_step,
        budget_s(run),  # type: ignore[arg-type]
        reserve_s=reserve_s(run, seconds_per_step),
        fill=run.config.epochs is None,
    )


def eta_s(run: Run, seconds_per_step: float) -> float:
    """Seconds until the run ends: the remaining steps and the evaluations among them."""
    steps = max(run.schedule.total_iters - run.iteration, 0)
    if budget_s(run) is not None:
        return steps * seconds_per_step + reserve_s(run, seconds_per_step)
    return steps * seconds_per_step + evaluations_left(run, seconds_per_step) * estimated_eval_s(run, seconds_per_step)


def plan_summary(run: Run, seconds_per_step: float) -> dict[str, Any]:
    """What the run will do, for the log line before training gets going."""
    return {
        "iterations": run.schedule.total_iters,
        "epochs": round(run.schedule.total_iters / run.sampler.batches_per_epoch, 1),
        "seconds_per_step": round(seconds_per_step, 3),
        "eta_s": round(eta_s(run, seconds_per_step)),
        "evaluations": evaluations_left(run, seconds_per_step),
    }
