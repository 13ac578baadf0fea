"""Building a training run from its config: data, model (and pretrained weights), optimiser, schedule, EMA,
loader, precision, the subscribers to its events; a resumed run restores its checkpoint (:mod:`gfocal.engine.run`)."""

from __future__ import annotations

import functools
import json
import logging
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from gfocal.engine.build import TrainData, TrainSetupError, build_data, build_model, build_optimizer
from gfocal.engine.config import TrainConfig
from gfocal.engine.distributed import DistInfo
from gfocal.engine.ema import ModelEMA
from gfocal.engine.events import Callback, EventBus
from gfocal.engine.loader import build_train_loader
from gfocal.engine.loggers import build_trackers
from gfocal.engine.metrics import MetricsLogger
from gfocal.engine.pretrained import PretrainedDetector, read_pretrained
from gfocal.engine.progress import Progress
from gfocal.engine.run import Clock, Run, StepHook, remove_interrupted_writes, restore, resume_path
from gfocal.engine.schedule import LRSchedule
from gfocal.engine.teacher import Teacher, distillation_settings, load_teacher
from gfocal.fileio import atomic_write_bytes
from gfocal.models.detector import GFLDetector
from gfocal.models.precision import autocast, compile_network, resolve_precision
from gfocal.models.pretrained import transfer_weights
from gfocal.models.weights import WeightsError

__all__ = ["prepare_run"]

PROVISIONAL_ITERS = 100_000
_CPU_PIXELS = 640 * 640  # network inputs larger than this train slowly on a CPU
logger = logging.getLogger(__name__)


def prepare_run(
    config: TrainConfig,
    info: DistInfo,
    device: torch.device,
    model: nn.Module | None,
    data: TrainData | None,
    on_step: StepHook | None = None,
    callbacks: Sequence[Callback] = (),
) -> Run:
    """Build data, model, optimiser, schedule, EMA, loader and subscribers; restore a checkpoint when resuming."""
    _seed_everything(config.seed)
    out_dir = Path(config.out_dir)
    # First: a tracker whose library is missing stops the run before minutes of set-up, on every process.
    trackers = build_trackers(config.loggers, out_dir)
    resume = resume_path(config)
    pretrained = read_pretrained(config.weights) if config.weights else None
    module, data = _model_and_data(config, model, data, device, pretrained.config if pretrained else None)
    if pretrained is not None and resume is None:  # a resumed run restores its own weights below
        _start_from(module, pretrained, config, info)
    if data.val is not None and data.val_records is None:
        raise ValueError("TrainData.val_records is required with a validation set (the ground truth for evaluation)")
    batch_size = _check_training_set(config, data, info)
    _warn_if_slow_here(module, device)
    teacher = _teacher(config, module, info)
    network = module if teacher is None else teacher.wrap(module, distillation_settings(config))
    network = network.to(device)  # the student, and the teacher beside it
    if config.channels_last:
        network = network.to(memory_format=torch.channels_last)
    loader, sampler = build_train_loader(
        data.train, data.collate, batch_size, config.seed, config.workers, info.rank, info.world_size, continuous=True
    )
    planned = _planned_schedule(config, sampler.batches_per_epoch)
    base_lr = config.lr * batch_size / 16
    optimizer = build_optimizer(config, module, base_lr)
    precision = resolve_precision(config.precision, device)
    wrapped = network
    if info.world_size > 1:
        wrapped = DistributedDataParallel(network, device_ids=[device.index] if device.type == "cuda" else None)
    subscribers = [MetricsLogger(out_dir, config.log_interval), Progress(), *trackers, *callbacks]
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
        EventBus(subscribers, enabled=info.is_main),
        Clock(0.0),
        on_step,
        distillation=None if teacher is None else teacher.record,
    )
    if info.is_main:
        remove_interrupted_writes(out_dir)
    if resume is not None:
        restore(run, resume)
    if info.is_main:
        atomic_write_bytes(out_dir / "config.yaml", config.to_yaml().encode("utf-8"))
    run.last_save_s = _save_estimate_s(module, config)
    if config.compile:  # after the EMA copied the eager module: a copy of a compiled one would call the original
        compile_network(module)
    return run


def _teacher(config: TrainConfig, module: nn.Module, info: DistInfo) -> Teacher | None:
    """The teacher of a distillation run (None without ``config.teacher``), its decisions logged."""
    if not config.teacher:
        return None
    if not isinstance(module, GFLDetector):
        raise TrainSetupError("TrainConfig.teacher needs a gfocal.models detector as the student")
    teacher = load_teacher(config, module)
    if info.is_main:
        for line in teacher.lines:
            logger.info("%s", line)
    return teacher


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
