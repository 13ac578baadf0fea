"""Learning-rate schedules: linear warm-up times a step or cosine decay, per iteration.

The factor multiplies the base learning rate (``lr * batch_size / 16``). Warm-up
is applied on top of the main schedule, as mmdetection does:
``factor(i) = warmup(i) * main(i)`` with ``warmup(i) = r + (1 - r) * i / W`` for
``i < W`` (r = ``warmup_ratio``, W = ``warmup_iters``) and 1 afterwards.

Reference: PAPER.md "Training recipe" (warm-up 500 iterations, x0.1 at epochs 8 and 11 of 12).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["LRSchedule", "fit_to_budget"]


@dataclass(frozen=True)
class LRSchedule:
    """A learning-rate factor for every iteration of a run of ``total_iters`` optimiser steps.

    Attributes:
        total_iters: optimiser steps in the whole run; training stops there.
        iters_per_epoch: steps per pass over the training set (for converting epochs).
        kind: "step" (x ``gamma`` at each milestone) or "cosine" (to ``min_ratio`` at ``total_iters``).
        milestones: iterations (not epochs) at which a step schedule multiplies by ``gamma``.
        warmup_iters, warmup_ratio: linear warm-up length and starting factor.
    """

    total_iters: int
    iters_per_epoch: int
    kind: Literal["step", "cosine"] = "step"
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    min_ratio: float = 0.01
    warmup_iters: int = 500
    warmup_ratio: float = 0.001

    @classmethod
    def from_epochs(
        cls,
        epochs: int,
        iters_per_epoch: int,
        kind: Literal["step", "cosine"] = "step",
        step_epochs: tuple[int, ...] = (),
        **kwargs: Any,
    ) -> LRSchedule:
        """A schedule of ``epochs`` epochs whose steps happen after the epochs listed in ``step_epochs``."""
        milestones = tuple(e * iters_per_epoch for e in step_epochs)
        return cls(epochs * iters_per_epoch, iters_per_epoch, kind, milestones, **kwargs)

    @property
    def epochs(self) -> int:
        """Epochs touched by the run (the last may be partial after compression)."""
        return math.ceil(self.total_iters / self.iters_per_epoch)

    def factor(self, iteration: int) -> float:
        """Learning-rate multiplier for the 0-based ``iteration`` (the step about to be taken)."""
        if self.kind == "step":
            main = self.gamma ** sum(iteration >= m for m in self.milestones)
        else:
            progress = min(iteration / max(self.total_iters, 1), 1.0)
            main = self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
        if iteration < self.warmup_iters:
            main *= self.warmup_ratio + (1 - self.warmup_ratio) * iteration / self.warmup_iters
        return main

    def resized(self, total_iters: int) -> LRSchedule:
        """The same schedule squeezed or stretched to ``total_iters`` steps.

        Milestones scale proportionally; the warm-up keeps its length but is capped
        at a fifth of the new run, so that a short run still reaches the full rate.
        """
        scale = total_iters / self.total_iters
        return dataclasses.replace(
            self,
            total_iters=total_iters,
            milestones=tuple(round(m * scale) for m in self.milestones),
            warmup_iters=min(self.warmup_iters, total_iters // 5),
        )

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "milestones": list(self.milestones)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> LRSchedule:
        return cls(**{**values, "milestones": tuple(values["milestones"])})


def fit_to_budget(
    planned: LRSchedule,
    done_iters: int,
    elapsed_s: float,
    seconds_per_iter: float,
    budget_s: float,
    reserve_s: float = 0.0,
    fill: bool = False,
) -> LRSchedule:
    """The schedule that ends the run within ``budget_s`` seconds.

    Args:
        planned: the schedule from the configuration (provisional when ``fill``).
        done_iters: steps already taken.
        elapsed_s: training seconds spent so far (over all resumed sessions).
        seconds_per_iter: measured wall time per training step (evaluations excluded).
        budget_s: the time budget.
        reserve_s: time kept for what is still to come besides training steps
            (evaluations, the final save).
        fill: plan the run to use the budget (stretching ``planned`` as well as squeezing it);
            otherwise the budget only caps ``planned``.

    Returns:
        a schedule of ``done_iters + remaining / seconds_per_iter`` steps (never fewer than
        ``done_iters``, so a spent budget stops training now), or ``planned`` when it is a cap
        that fits.
    """
    remaining = max(budget_s - elapsed_s - reserve_s, 0.0)
    total = max(done_iters + int(remaining / max(seconds_per_iter, 1e-9)), done_iters, 1)
    if not fill and total >= planned.total_iters:
        return planned
    return planned.resized(total)
