"""A training run's state (:class:`Run`): saving it to checkpoints, restoring it on resume, exporting its weights.

Building a run from its config is :mod:`gfocal.engine.prepare`.

A checkpoint (``last.pt``, ``best.pt``) holds: ``model`` (state dict of the
unwrapped model), ``optimizer``, ``schedule`` (the possibly compressed
:class:`LRSchedule`), ``ema``, ``scaler``, ``iteration``, ``epoch``, ``sampler``,
``rng`` (one entry per process), ``config`` (the resolved :class:`TrainConfig`),
``model_config`` (``model.config.to_dict()`` when the model has one),
``best_ap``, ``best_iteration``, ``evaluations_since_best`` and ``early_stopped`` (the patience's count, and
whether it ended the run: a resumed early-stopped run does not train again), ``elapsed_s`` (training seconds
so far), ``distillation`` (the teacher file's path and SHA-256, None without one; a resumed run refuses a
changed teacher) and ``gfocal_version``. The teacher's weights are never in it.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from gfocal import __version__
from gfocal.engine.build import TrainData, TrainSetupError
from gfocal.engine.checkpoint import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from gfocal.engine.config import TrainConfig
from gfocal.engine.distributed import DistInfo, all_gather_objects
from gfocal.engine.ema import ModelEMA
from gfocal.engine.events import EventBus
from gfocal.engine.loader import ResumableSampler
from gfocal.engine.schedule import LRSchedule
from gfocal.engine.teacher import check_same_teacher

__all__ = [
    "TrainingDiverged",
    "Clock",
    "Run",
    "StepHook",
    "save_training_state",
    "export_weights",
    "resume_path",
    "restore",
]


# Settings that may change when resuming; any other difference from the checkpoint's config is an error.
RESUMABLE_CHANGES = frozenset(
    {
        "resume",
        "out_dir",
        "device",
        "workers",
        "eval_interval",
        "checkpoint_interval",
        "log_interval",
        "time_budget_minutes",
        "loggers",
        "patience",
    }
)


#: ``on_step(iteration, network)``: called after each optimiser step (see :func:`gfocal.engine.train`).
StepHook = Callable[[int, nn.Module], None]


class TrainingDiverged(RuntimeError):
    """A loss or gradient became NaN or infinite; ``iteration`` is the 1-based step that failed."""

    def __init__(self, message: str, iteration: int) -> None:
        super().__init__(message)
        self.iteration = iteration


class Clock:
    """Run seconds over all sessions of a run, and the time per training step since a mark.

    Seconds spent on other things than steps (evaluations, checkpoints) are reported with
    :meth:`pause` and left out of the time per step.
    """

    def __init__(self, prior_s: float) -> None:
        self.prior_s, self.started = prior_s, time.perf_counter()
        self.session_steps, self.mark_iter, self.mark_time, self.paused_s = 0, 0, self.started, 0.0

    def elapsed(self) -> float:
        return self.prior_s + time.perf_counter() - self.started

    def mark(self, iteration: int) -> None:
        self.mark_iter, self.mark_time, self.paused_s = iteration, time.perf_counter(), 0.0

    def pause(self, seconds: float) -> None:
        self.paused_s += seconds

    def seconds_per_step(self, iteration: int) -> float:
        return (time.perf_counter() - self.mark_time - self.paused_s) / max(iteration - self.mark_iter, 1)


@dataclass
class Run:
    """Everything the loop reads and updates; ``model`` may be the DDP wrapper, ``module`` never is."""

    config: TrainConfig
    info: DistInfo
    device: torch.device
    data: TrainData
    model: nn.Module
    module: nn.Module
    optimizer: torch.optim.Optimizer
    base_lr: float
    planned: LRSchedule
    schedule: LRSchedule
    ema: ModelEMA | None
    scaler: torch.amp.GradScaler | None
    autocast: Callable[[], AbstractContextManager[None]]
    loader: DataLoader
    sampler: ResumableSampler
    out_dir: Path
    events: EventBus
    clock: Clock
    on_step: StepHook | None = None
    iteration: int = 0
    best_ap: float = -1.0
    best_iteration: int = 0
    evaluations_since_best: int = 0  # evaluations in a row that did not beat best_ap (for the patience)
    early_stopped: bool = False
    last_eval_s: float | None = None
    last_eval_end_s: float = 0.0
    last_save_s: float = 0.0
    last_save_end_s: float = 0.0  # clock.elapsed() when last.pt was last written (or the run began)
    final_metrics: dict[str, Any] | None = None
    last_saved: tuple[Path, int] | None = None
    stopped_by_time_budget: bool = False
    first_last_bin_fractions: list[float] = field(default_factory=list)  # over the first log_interval steps
    distillation: dict[str, str] | None = None  # the teacher file's path and SHA-256 (gfocal.engine.teacher)

    @property
    def epoch_progress(self) -> float:
        """Epochs completed, fractional mid-epoch."""
        return round(self.iteration / self.sampler.batches_per_epoch, 4)


def save_training_state(run: Run, best: bool) -> None:
    """Write ``last.pt`` (and ``best.pt``): every rank contributes its RNG state, rank 0 writes.

    Refuses (raising :class:`TrainingDiverged`) to save non-finite weights.
    """
    rng = all_gather_objects(capture_rng_state())
    run.last_save_end_s = run.clock.elapsed()
    if not run.info.is_main:
        return
    if not all(torch.isfinite(p).all() for p in run.module.parameters()):
        raise TrainingDiverged(
            f"training diverged: non-finite weights at iteration {run.iteration}; "
            f"not saving over the last good checkpoint {run.last_saved}",
            iteration=run.iteration,
        )
    epoch, start_batch = divmod(run.iteration, run.sampler.batches_per_epoch)
    model_config = getattr(run.module, "config", None)
    state = {
        "model": run.module.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "schedule": run.schedule.to_dict(),
        "ema": run.ema.state_dict() if run.ema else None,
        "scaler": run.scaler.state_dict() if run.scaler else None,
        "iteration": run.iteration,
        "epoch": epoch,
        "sampler": {**run.sampler.state_dict(), "epoch": epoch, "start_batch": start_batch},
        "rng": rng,
        "config": run.config.to_dict(),
        "model_config": model_config.to_dict() if hasattr(model_config, "to_dict") else None,
        "best_ap": run.best_ap,
        "best_iteration": run.best_iteration,
        "evaluations_since_best": run.evaluations_since_best,
        "early_stopped": run.early_stopped,
        "elapsed_s": run.clock.elapsed(),
        "distillation": run.distillation,
        "gfocal_version": __version__,
    }
    for name in ("last.pt", "best.pt") if best else ("last.pt",):
        save_checkpoint(run.out_dir / name, state)
    run.last_saved = (run.out_dir / "last.pt", run.iteration)


def export_weights(run: Run) -> tuple[Path | None, Path | None]:
    """Write ``model.safetensors`` (the final weights) and ``model_best.safetensors`` (from ``best.pt``, if any).

    Both load with ``gfocal.models.load_model``; the EMA weights are exported when EMA is on.
    Only for ``gfocal.models`` detectors: (None, None) otherwise.
    """
    from gfocal.models import GFLDetector, save_weights

    if not (run.info.is_main and isinstance(run.module, GFLDetector)):
        return None, None
    best = run.out_dir / "best.pt"
    final = save_weights(_weights_of(run, run.out_dir / "last.pt"), run.out_dir / "model.safetensors")
    return final, save_weights(
        _weights_of(run, best), run.out_dir / "model_best.safetensors"
    ) if best.is_file() else None


def _weights_of(run: Run, checkpoint: Path) -> nn.Module:
    state = load_checkpoint(checkpoint)
    model = copy.deepcopy(run.module).cpu()
    model.load_state_dict(state["ema"]["module"] if state["ema"] else state["model"])
    return model


def resume_path(config: TrainConfig) -> Path | None:
    if not config.resume:
        return None
    if config.resume == "auto":
        last = Path(config.out_dir) / "last.pt"
        return last if last.is_file() else None
    return Path(config.resume)


def remove_interrupted_writes(out_dir: Path) -> None:
    """Delete the temporaries of writes a crash cut short in the run folder (``gfocal.fileio`` names them ``.NAME.*.tmp``)."""
    for folder in (out_dir, out_dir / "eval"):
        for stale in folder.glob(".*.*.tmp"):
            stale.unlink(missing_ok=True)


def restore(run: Run, path: Path) -> None:
    state = load_checkpoint(path)  # CPU: RNG states must stay CPU tensors; load_state_dict moves the rest
    saved = TrainConfig.from_dict(state["config"]).to_dict()
    changed = [k for k, v in run.config.to_dict().items() if k not in RESUMABLE_CHANGES and saved.get(k) != v]
    if changed:
        diffs = ", ".join(f"{k}: {saved.get(k)!r} -> {getattr(run.config, k)!r}" for k in changed)
        raise TrainSetupError(
            f"cannot resume from {path}: the config differs from the checkpoint's in {diffs}; "
            "use the checkpoint's values or start a new run"
        )
    check_same_teacher(state.get("distillation"), run.distillation, path)
    sampler = state["sampler"]
    if sampler["seed"] != run.sampler.seed:
        raise TrainSetupError(f"cannot resume from {path}: its data order (seed) differs from this run's")
    if sampler["batch_size"] != run.sampler.batch_size:  # the training set changed size across batch_size
        raise TrainSetupError(
            f"cannot resume from {path}: it trained with batches of {sampler['batch_size']} images, this run would use "
            f"{run.sampler.batch_size} (batch_size {run.config.batch_size}, {run.sampler.num_samples} usable training "
            "images now); train on the images it started with or start a new run"
        )
    run.module.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.schedule = LRSchedule.from_dict(state["schedule"])
    if run.ema is not None:
        run.ema.load_state_dict(state["ema"])
    if run.scaler is not None and state["scaler"] is not None:
        run.scaler.load_state_dict(state["scaler"])
    run.iteration, run.best_ap = int(state["iteration"]), float(state["best_ap"])
    run.best_iteration = int(state.get("best_iteration", 0))
    run.evaluations_since_best = int(state.get("evaluations_since_best", 0))
    run.early_stopped = bool(state.get("early_stopped", False))
    run.clock = Clock(float(state["elapsed_s"]))
    run.last_save_end_s = run.clock.prior_s
    run.stopped_by_time_budget = run.config.epochs is not None and run.schedule.total_iters < run.planned.total_iters
    run.last_saved = (path, run.iteration)
    rng = state["rng"]
    restore_rng_state(rng[run.info.rank] if run.info.rank < len(rng) else rng[0])
