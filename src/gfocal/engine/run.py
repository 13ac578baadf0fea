"""A training run's state: building it from a config, saving it to checkpoints and restoring it on resume.

A checkpoint (``last.pt``, ``best.pt``) holds: ``model`` (state dict of the
unwrapped model), ``optimizer``, ``schedule`` (the possibly compressed
:class:`LRSchedule`), ``ema``, ``scaler``, ``iteration``, ``epoch``, ``sampler``,
``rng`` (one entry per process), ``config`` (the resolved :class:`TrainConfig`),
``model_config`` (``model.config.to_dict()`` when the model has one),
``best_ap``, ``elapsed_s`` (training seconds so far) and ``gfocal_version``.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import random
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from gfocal import __version__
from gfocal.engine.build import TrainData, TrainSetupError, build_data, build_model, build_optimizer
from gfocal.engine.checkpoint import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from gfocal.engine.config import TrainConfig
from gfocal.engine.distributed import DistInfo, all_gather_objects
from gfocal.engine.ema import ModelEMA
from gfocal.engine.loader import ResumableSampler, build_train_loader
from gfocal.engine.metrics import MetricsLog
from gfocal.engine.pretrained import PretrainedDetector, read_pretrained
from gfocal.engine.schedule import LRSchedule
from gfocal.fileio import atomic_write_bytes
from gfocal.models.precision import autocast, compile_network, resolve_precision
from gfocal.models.pretrained import transfer_weights
from gfocal.models.weights import WeightsError

__all__ = ["TrainingDiverged", "Run", "prepare_run", "save_training_state", "export_weights"]

PROVISIONAL_ITERS = 100_000
_CPU_PIXELS = 640 * 640  # network inputs larger than this train slowly on a CPU
logger = logging.getLogger(__name__)

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
    }
)


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
    log: MetricsLog
    clock: Clock
    iteration: int = 0
    best_ap: float = -1.0
    best_iteration: int = 0
    last_eval_s: float | None = None
    last_eval_end_s: float = 0.0
    last_save_s: float = 0.0
    last_progress_log: float = 0.0
    final_metrics: dict[str, Any] | None = None
    last_saved: tuple[Path, int] | None = None
    stopped_by_time_budget: bool = False
    window: list[dict[str, float]] = field(default_factory=list)

    @property
    def epoch_progress(self) -> float:
        """Epochs completed, fractional mid-epoch."""
        return round(self.iteration / self.sampler.batches_per_epoch, 4)


def prepare_run(
    config: TrainConfig, info: DistInfo, device: torch.device, model: nn.Module | None, data: TrainData | None
) -> Run:
    """Build data, model, optimiser, schedule, EMA and loader; restore a checkpoint when resuming."""
    _seed_everything(config.seed)
    resume = _resume_path(config)
    pretrained = read_pretrained(config.weights) if config.weights else None
    module, data = _model_and_data(config, model, data, device, pretrained.config if pretrained else None)
    if pretrained is not None and resume is None:  # a resumed run restores its own weights below
        _start_from(module, pretrained, config, info)
    if data.val is not None and data.val_records is None:
        raise ValueError("TrainData.val_records is required with a validation set (the ground truth for evaluation)")
    batch_size = _check_training_set(config, data, info)
    _warn_if_slow_here(module, device)
    module = module.to(device)
    if config.channels_last:
        module = module.to(memory_format=torch.channels_last)
    loader, sampler = build_train_loader(
        data.train, data.collate, batch_size, config.seed, config.workers, info.rank, info.world_size
    )
    planned = _planned_schedule(config, sampler.batches_per_epoch)
    base_lr = config.lr * batch_size / 16
    optimizer = build_optimizer(config, module, base_lr)
    precision = resolve_precision(config.precision, device)
    wrapped = module
    if info.world_size > 1:
        wrapped = DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)
    out_dir = Path(config.out_dir)
    run = Run(
        config,
        info,
        device,
        data,
        wrapped,
        module,
        optimizer,
        base_lr,
        planned,
        planned,
        ModelEMA(module, config.ema_decay) if config.ema else None,
        torch.amp.GradScaler(device.type) if precision.name == "fp16" else None,  # fp16 gradients underflow
        functools.partial(autocast, precision),
        loader,
        sampler,
        out_dir,
        MetricsLog(out_dir / "metrics.jsonl", enabled=info.is_main),
        Clock(0.0),
    )
    if info.is_main:
        _remove_interrupted_writes(out_dir)
    if resume is not None:
        _restore(run, resume)
    elif info.is_main:
        run.log.path.unlink(missing_ok=True)  # a fresh run in an old folder starts a fresh log
        run.log.write(
            {
                "kind": "setup",
                "epoch": 0.0,
                "iteration": 0,
                "batch_size": batch_size,
                "requested_batch_size": config.batch_size,
                "train_images": len(data.train),  # type: ignore[arg-type]
                "world_size": info.world_size,
                "base_lr": base_lr,
            }
        )
    if info.is_main:
        atomic_write_bytes(out_dir / "config.yaml", config.to_yaml().encode("utf-8"))
    run.last_save_s = _save_estimate_s(module, config)
    if config.compile:  # after the EMA copied the eager module: a copy of a compiled one would call the original
        compile_network(module)
    return run


def _save_estimate_s(module: nn.Module, config: TrainConfig) -> float:
    """Seconds a checkpoint write takes before one is measured: weights, optimiser state and EMA at ~200 MB/s."""
    parameters = sum(p.numel() for p in module.parameters())
    copies = 1 + (2 if config.optimizer == "adamw" else 1) + int(config.ema)
    return 0.1 + parameters * 4 * copies / 200e6


def _warn_if_slow_here(module: nn.Module, device: torch.device) -> None:
    """A large input on a CPU trains for hours: say so before the first step (the ETA follows after a few)."""
    model_config = getattr(module, "config", None)
    if device.type != "cpu" or model_config is None or model_config.min_size * model_config.max_size <= _CPU_PIXELS:
        return
    logger.warning(
        "training a %s model at %dx%d on a CPU: each step takes long (the plan and ETA follow after the "
        "first steps); on a CPU the default model (gfl_nano) or a smaller --image-size trains far faster",
        model_config.backbone,
        model_config.max_size,
        model_config.min_size,
    )


def _planned_schedule(config: TrainConfig, batches_per_epoch: int) -> LRSchedule:
    """The schedule of ``config.epochs``; without epochs, a provisional one that the time budget re-plans."""
    options = {
        "gamma": config.step_gamma,
        "min_ratio": config.min_lr_ratio,
        "warmup_iters": config.warmup_iters,
        "warmup_ratio": config.warmup_ratio,
    }
    if config.epochs is not None:
        return LRSchedule.from_epochs(config.epochs, batches_per_epoch, config.schedule, config.step_epochs, **options)
    # Until the step time is measured (a few steps), a long plan: only the warm-up's start is used.
    provisional = max(PROVISIONAL_ITERS, config.warmup_iters * 5)
    milestones = (round(provisional * 8 / 12), round(provisional * 11 / 12))  # the paper's steps, as fractions
    return LRSchedule(provisional, batches_per_epoch, config.schedule, milestones, **options)


def _model_and_data(
    config: TrainConfig, model: nn.Module | None, data: TrainData | None, device: torch.device, architecture: Any
) -> tuple[nn.Module, TrainData]:
    """Use what the caller gave; build the rest from the config (the model needs the class names first)."""
    if data is not None and model is not None:
        return model, data
    if data is not None:
        names = list(data.train.records.class_names)  # type: ignore[attr-defined]
        return build_model(config, names, device, architecture), data
    if not config.train_data:
        raise TrainSetupError("TrainConfig.train_data is required (a dataset path for gfocal.data.load_dataset)")
    from gfocal.data import load_dataset

    train_records = load_dataset(
        config.train_data, images_dir=config.train_images or None, split=config.train_split or None
    )
    model = model if model is not None else build_model(config, list(train_records.class_names), device, architecture)
    return model, build_data(config, train_records, model)


def _start_from(module: nn.Module, pretrained: PretrainedDetector, config: TrainConfig, info: DistInfo) -> None:
    """Load the pretrained detector's tensors that fit; log each decision and list them in ``out_dir/pretrained.json``."""
    try:
        report = transfer_weights(
            module,
            pretrained.state,
            pretrained.class_names,
            pretrained.source,
            by_order=config.weights_class_map == "by_order",
        )
    except WeightsError as error:
        raise TrainSetupError(str(error)) from error
    report.notes[:0] = pretrained.notes
    if info.is_main:
        for line in report.lines():
            logger.info("%s", line)
        atomic_write_bytes(
            Path(config.out_dir) / "pretrained.json",
            json.dumps({"kind": pretrained.kind, **report.to_dict()}, indent=2).encode("utf-8"),
        )


def save_training_state(run: Run, best: bool) -> None:
    """Write ``last.pt`` (and ``best.pt``): every rank contributes its RNG state, rank 0 writes.

    Refuses (raising :class:`TrainingDiverged`) to save non-finite weights.
    """
    rng = all_gather_objects(capture_rng_state())
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
        "elapsed_s": run.clock.elapsed(),
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


def _resume_path(config: TrainConfig) -> Path | None:
    if not config.resume:
        return None
    if config.resume == "auto":
        last = Path(config.out_dir) / "last.pt"
        return last if last.is_file() else None
    return Path(config.resume)


def _remove_interrupted_writes(out_dir: Path) -> None:
    """Delete the temporaries of writes a crash cut short in the run folder (``gfocal.fileio`` names them ``.NAME.*.tmp``)."""
    for folder in (out_dir, out_dir / "eval"):
        for stale in folder.glob(".*.*.tmp"):
            stale.unlink(missing_ok=True)


def _restore(run: Run, path: Path) -> None:
    state = load_checkpoint(path)  # CPU: RNG states must stay CPU tensors; load_state_dict moves the rest
    saved = TrainConfig.from_dict(state["config"]).to_dict()
    changed = [k for k, v in run.config.to_dict().items() if k not in RESUMABLE_CHANGES and saved.get(k) != v]
    if changed:
        diffs = ", ".join(f"{k}: {saved.get(k)!r} -> {getattr(run.config, k)!r}" for k in changed)
        raise TrainSetupError(
            f"cannot resume from {path}: the config differs from the checkpoint's in {diffs}; "
            "use the checkpoint's values or start a new run"
        )
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
    run.clock = Clock(float(state["elapsed_s"]))
    run.stopped_by_time_budget = run.config.epochs is not None and run.schedule.total_iters < run.planned.total_iters
    run.last_saved = (path, run.iteration)
    run.log.truncate_after(run.iteration)
    rng = state["rng"]
    restore_rng_state(rng[run.info.rank] if run.info.rank < len(rng) else rng[0])


def _check_training_set(config: TrainConfig, data: TrainData, info: DistInfo) -> int:
    """Refuse a training set that cannot train; return the global batch to train with.

    A ``gfocal.data`` training set must hold a box (:meth:`DatasetRecords.require_boxes`). The batch is
    ``config.batch_size``, or the whole set when it holds fewer images, rounded down to a multiple of the
    number of processes (each needs an image per step).
    """
    records = getattr(data.train, "records", None)
    if hasattr(records, "require_boxes"):
        records.require_boxes("train on")  # raises DatasetError naming the file and what validation dropped
    source, processes = config.train_data or "the training set", info.world_size
    images = len(data.train)  # type: ignore[arg-type]
    if config.batch_size % processes:
        raise TrainSetupError(f"batch_size {config.batch_size} is not divisible by the {processes} processes")
    if images >= config.batch_size:
        return config.batch_size
    batch = images // processes * processes
    if batch == 0:
        detail = (
            f"fewer than the {processes} processes (each needs an image per step)" if images else "nothing to train"
        )
        raise TrainSetupError(
            f"{source}: {images} usable images, {detail}; see the dataset warnings for skipped images"
        )
    if info.is_main:
        whole = "the whole set" if batch == images else f"a multiple of the {processes} processes"
        logger.warning(
            "the training set%s has %d usable images, fewer than batch_size %d: training with batches of %d "
            "(%s), lr %g (lr %g x %d/16)",
            f" {config.train_data}" if config.train_data else "",
            images,
            config.batch_size,
            batch,
            whole,
            config.lr * batch / 16,
            config.lr,
            batch,
        )
    return batch


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
