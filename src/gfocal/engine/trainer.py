"""The training loop: ``train(config) -> TrainResult``.

One optimiser step: set the scheduled learning rate, forward in autocast, check
the loss is finite (averaged over processes, so every rank takes the same
decision), backward, clip, step, update the EMA. Around it: periodic checkpoints,
the time budget, evaluation at epoch ends, early stopping, the caller's ``on_step``
hook, and the events (:mod:`gfocal.engine.events`) that the logs, the progress bar
and the trackers subscribe to. Set-up lives in :mod:`gfocal.engine.prepare`,
checkpoint state and resume in :mod:`gfocal.engine.run`, planning against the clock
in :mod:`gfocal.engine.budget`.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gfocal.engine.budget import evaluation_due, plan_summary, replan
from gfocal.engine.build import TrainData, validation_network
from gfocal.engine.config import TrainConfig
from gfocal.engine.distributed import all_reduce_mean, broadcast_object, cleanup_distributed, setup_distributed
from gfocal.engine.evaluate import format_results, model_evaluation, save_results
from gfocal.engine.events import (
    Callback,
    CheckpointSaved,
    EvaluationEnded,
    Event,
    FirstStepTimed,
    PlanMade,
    RunEnded,
    RunFailed,
    RunStarted,
    StepEnded,
    StopReason,
)
from gfocal.engine.loader import endless_batches
from gfocal.engine.prepare import prepare_run
from gfocal.engine.run import Run, StepHook, TrainingDiverged, export_weights, save_training_state
from gfocal.models.config import image_size_options

__all__ = ["train", "TrainResult"]

logger = logging.getLogger(__name__)

_WARM_STEPS = 3  # steps excluded from the time-per-step estimate (allocator and kernel warm-up)
_PLAN_STEPS = 2  # measured steps before the plan and ETA are announced
# last.pt at an epoch end at most this often (besides evaluations and the end): a small set's epoch is a few
# steps, and a save per epoch cost about a step's time every few steps.
_SAVE_EVERY_S = 60.0


@dataclass(frozen=True)
class TrainResult:
    """What a run produced.

    Attributes:
        out_dir: the run folder (checkpoints, ``config.yaml``, ``metrics.jsonl``, ``eval/``, plots).
        last_checkpoint: ``out_dir/last.pt``, the state after the last step.
        best_checkpoint: ``out_dir/best.pt``, the state with the best evaluation AP (None without evaluation).
        weights: ``out_dir/model.safetensors``, the final weights (the EMA's when on) for
            ``gfocal.models.load_model``; None for models other than ``gfocal.models`` detectors.
        best_weights: ``out_dir/model_best.safetensors``, the weights with the best validation AP
            (None without evaluation). Picked on the validation set: its AP there is not a test result.
        iterations: optimiser steps taken in total.
        epochs: epochs completed (fractional when a time budget cut the last one short).
        final_metrics: the last evaluation's results (see ``evaluate_detections``), None without evaluation.
        best_ap: the best evaluation AP, None without evaluation.
        stopped_by_time_budget: the schedule was compressed to fit ``time_budget_minutes``.
        stop_reason: why the run ended: "finished", "time budget" (a budget filled or capped the schedule)
            or "early stop" (``patience`` evaluations without a better validation AP).
    """

    out_dir: Path
    last_checkpoint: Path
    best_checkpoint: Path | None
    weights: Path | None
    best_weights: Path | None
    iterations: int
    epochs: float
    final_metrics: dict[str, Any] | None
    best_ap: float | None
    stopped_by_time_budget: bool
    stop_reason: StopReason = "finished"


def train(
    config: TrainConfig,
    *,
    model: nn.Module | None = None,
    data: TrainData | None = None,
    on_step: StepHook | None = None,
    callbacks: Sequence[Callback] = (),
) -> TrainResult:
    """Train (or resume, per ``config.resume``) and return where the results are.

    Args:
        config: the run's configuration.
        model: a detector obeying the ``gfocal.models`` contract; built from ``config.model`` when None.
        data: datasets and collate function; built from ``config.train_data``/``val_data`` when None.
        on_step: ``on_step(iteration, network)``, called on the main process after each optimiser step
            with the steps taken so far and the network that evaluation uses (the EMA's when on), in eval
            mode (training mode is restored after it); for measurements during training, e.g. a probe every
            N steps (``benchmarks/ambiguity_auroc.py``). Its time is left out of the time per step.
        callbacks: subscribers to the run's events (:class:`gfocal.engine.events.Callback`: ``on_event(event)``),
            called on the main process after the built-in ones (``metrics.jsonl``, progress, trackers); their
            time is left out of the time per step too.

    Raises:
        TrainingDiverged: a loss or gradient became NaN/inf; the last good checkpoint is kept.
    """
    info, device = setup_distributed(config.device)
    try:
        run = prepare_run(config, info, device, model, data, on_step, callbacks)
        try:
            return _fit(run)
        except BaseException as error:  # an interrupt too: the trackers close their files and runs
            run.events.emit_failure(RunFailed(run.iteration, str(error) or type(error).__name__))
            raise
    finally:
        cleanup_distributed(info)


def _fit(run: Run) -> TrainResult:
    _emit(run, _run_started(run))
    if run.iteration >= run.schedule.total_iters or run.early_stopped:  # a finished run resumed: nothing to train
        return _finish(run)
    batches = endless_batches(run.loader, *divmod(run.iteration, run.sampler.batches_per_epoch))
    try:
        while run.iteration < run.schedule.total_iters and not run.early_stopped:
            epoch, start = divmod(run.iteration, run.sampler.batches_per_epoch)
            _train_epoch(run, batches, start)
            if run.iteration >= run.schedule.total_iters:
                batches.close()  # else the workers prefetch batches no step takes, beside the final evaluation
            _end_epoch(run, epoch)
    finally:
        batches.close()
    return _finish(run)


def _emit(run: Run, event: Event) -> None:
    """Hand ``event`` to the subscribers; their seconds are not training time (the time budget plans with it)."""
    run.clock.pause(run.events.emit(event))


def _run_started(run: Run) -> RunStarted:
    return RunStarted(
        config=run.config.to_dict(),
        out_dir=run.out_dir,
        iteration=run.iteration,
        steps_per_epoch=run.sampler.batches_per_epoch,
        setup={
            "batch_size": run.sampler.batch_size,
            "requested_batch_size": run.config.batch_size,
            "train_images": len(run.data.train),  # type: ignore[arg-type]
            "world_size": run.info.world_size,
            "base_lr": run.base_lr,
        },
    )


def _train_epoch(run: Run, batches: Iterator[Any], start: int) -> None:
    """The steps of the current epoch from its batch ``start`` on, or up to the end of the schedule."""
    for _ in range(start, run.sampler.batches_per_epoch):
        tick = time.perf_counter()
        images, targets = next(batches)
        data_time = time.perf_counter() - tick
        losses, loss, lr, counters = _step(run, images, targets)
        run.iteration += 1
        step_s = time.perf_counter() - tick
        _emit(
            run,
            StepEnded(
                iteration=run.iteration,
                epoch=run.epoch_progress,
                total_iterations=run.schedule.total_iters,
                losses=losses,
                loss=loss,
                lr=lr,
                step_s=step_s,
                data_s=data_time,
                images_per_s=run.sampler.batch_size / step_s,
                counters=counters,
            ),
        )
        _after_step(run, counters, step_s)
        if run.on_step is not None and run.info.is_main:
            _call_hook(run, run.on_step)
        if run.iteration >= run.schedule.total_iters:
            break


def _call_hook(run: Run, hook: StepHook) -> None:
    """The caller's hook on the evaluated network in eval mode; its seconds are not training time."""
    started = time.perf_counter()
    network = run.ema.module if run.ema is not None else run.module
    was_training = network.training
    network.eval()
    try:
        hook(run.iteration, network)
    finally:
        network.train(was_training)
    run.clock.pause(time.perf_counter() - started)


def _step(
    run: Run, images: list[torch.Tensor], targets: list[dict[str, Any]]
) -> tuple[dict[str, float], float, float, dict[str, float]]:
    """One optimiser step; returns the loss terms (averaged over processes), their sum, the learning rate and
    the counters: the model's ``last_stats`` and ``grad_norm`` when clipping."""
    lr = run.base_lr * run.schedule.factor(run.iteration)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    images = [image.to(run.device, non_blocking=True) for image in images]
    targets = [
        {k: v.to(run.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in t.items()} for t in targets
    ]
    with run.autocast():
        loss_dict = run.model(images, targets, **_input_size(run))
    loss = sum(loss_dict.values())
    terms = all_reduce_mean(torch.stack([loss.detach().float(), *(v.detach().float() for v in loss_dict.values())]))
    total, *values = terms.tolist()  # the one host sync of a step: the finiteness check needs it anyway
    losses = dict(zip(loss_dict, values))
    if not math.isfinite(total):
        raise _diverged(run, "loss", {"loss": total, **losses})
    counters = dict(getattr(run.module, "last_stats", None) or {})
    run.optimizer.zero_grad(set_to_none=True)
    scaler = run.scaler
    (scaler.scale(loss) if scaler else loss).backward()
    if scaler:
        scaler.unscale_(run.optimizer)
    if run.config.clip_grad_norm is not None:
        norm = nn.utils.clip_grad_norm_(run.module.parameters(), run.config.clip_grad_norm).item()
        if not math.isfinite(norm) and scaler is None:  # with fp16 loss scaling, inf gradients just skip the step
            raise _diverged(run, "gradient norm", {"loss": total, **losses, "grad_norm": norm})
        counters["grad_norm"] = norm
    if scaler:
        scaler.step(run.optimizer)
        scaler.update()
    else:
        run.optimizer.step()
    if run.ema is not None:
        run.ema.update(run.module)
    return losses, total, lr, counters


def _input_size(run: Run) -> dict[str, tuple[int, int]]:
    """Multi-scale training: this batch's network input size, drawn from ``config.multiscale`` in multiples of 32."""
    if run.config.multiscale is None:
        return {}
    lo, hi = run.config.multiscale
    longer = min(max(32 * round(random.uniform(lo, hi) / 32), lo), hi)
    model_config = run.module.config  # type: ignore[attr-defined]
    sizes = image_size_options(model_config.min_size, model_config.max_size, longer)
    return {"input_size": (sizes["min_size"], sizes["max_size"])}


def _diverged(run: Run, what: str, values: dict[str, float]) -> TrainingDiverged:
    epoch = run.iteration // run.sampler.batches_per_epoch + 1
    terms = ", ".join(f"{k}={v:.4g}" for k, v in values.items())
    kept = (
        f"the last good checkpoint is kept at {run.last_saved[0]} (iteration {run.last_saved[1]})"
        if run.last_saved
        else "no checkpoint had been written yet"
    )
    return TrainingDiverged(
        f"training diverged: non-finite {what} at iteration {run.iteration + 1} (epoch {epoch}): {terms}; {kept}. "
        f"Try a lower lr (now {run.config.lr} per 16 images), a clip_grad_norm, a longer warm-up, or check the data.",
        iteration=run.iteration + 1,
    )


def _after_step(run: Run, counters: dict[str, float], step_s: float) -> None:
    """The range check on the first steps, periodic checkpoints and the time budget."""
    if run.iteration <= run.config.log_interval and run.info.is_main:
        run.first_last_bin_fractions.append(counters.get("last_bin_fraction", 0.0))
        if run.iteration == run.config.log_interval:
            fractions = run.first_last_bin_fractions
            _warn_short_range(sum(fractions) / len(fractions), run.module)
    if run.config.checkpoint_interval and run.iteration % run.config.checkpoint_interval == 0:
        _save(run, best=False)
    _track_speed(run, step_s)


def _save(run: Run, best: bool) -> None:
    """Write ``last.pt`` (and ``best.pt``) and tell the subscribers."""
    save_training_state(run, best=best)
    _emit(run, CheckpointSaved(run.out_dir / "last.pt", "last", run.iteration))
    if best:
        _emit(run, CheckpointSaved(run.out_dir / "best.pt", "best", run.iteration))


_LAST_BIN_WARNING = 0.02  # share of positive edge targets clamped to the last bin worth a warning


def _warn_short_range(last_bin_fraction: float, model: nn.Module) -> None:
    """Warn when many positives' edge targets sit at the last bin: reg_max x stride is too short for the data."""
    if last_bin_fraction > _LAST_BIN_WARNING:
        logger.warning(
            "%.1f%% of the positives' edge targets sit at the last bin (beyond reg_max=%d strides), so large "
            "boxes are learned cropped; `gfocal analyze range --data ... --model ...` suggests a reg_max "
            "(set it with --set model_overrides.reg_max=...)",
            100 * last_bin_fraction,
            model.config.reg_max,
        )


def _track_speed(run: Run, iter_time: float) -> None:
    """Measure the step time; re-plan a budgeted run (rank 0 decides, everyone follows); tell the subscribers the
    first step's time and, once, the plan."""
    clock = run.clock
    if clock.session_steps == 0:
        _emit(run, FirstStepTimed(run.iteration, iter_time))
    if clock.session_steps < _WARM_STEPS:
        clock.session_steps += 1
        clock.mark(run.iteration)
        return
    seconds_per_step = clock.seconds_per_step(run.iteration)
    if run.config.time_budget_minutes is not None:
        schedule = broadcast_object(replan(run, seconds_per_step) if run.info.is_main else None)
        if schedule.total_iters != run.schedule.total_iters:
            run.schedule = schedule
            run.stopped_by_time_budget = (
                run.config.epochs is not None and schedule.total_iters < run.planned.total_iters
            )
    clock.session_steps += 1
    if clock.session_steps == _WARM_STEPS + _PLAN_STEPS and run.info.is_main:
        _emit(run, PlanMade(run.iteration, **plan_summary(run, seconds_per_step)))


def _end_epoch(run: Run, epoch: int) -> None:
    """Evaluate when due (and always at the end), then save ``last.pt`` when due (and ``best.pt`` on a new best
    AP); the patience may end the run here."""
    final = run.iteration >= run.schedule.total_iters
    seconds_per_step = run.clock.seconds_per_step(run.iteration)
    improved = False
    evaluated = evaluation_due(run, epoch, final, seconds_per_step)
    if evaluated:
        improved = _evaluate(run, epoch)
        _count_patience(run, improved, final)
    if _save_due(run, final or evaluated):  # the final save is also what export_weights reads
        started = time.perf_counter()
        _save(run, best=improved)
        run.last_save_s = time.perf_counter() - started
    if run.info.is_main:
        logger.info(
            "epoch %d/%d done: iteration %d/%d", epoch + 1, run.schedule.epochs, run.iteration, run.schedule.total_iters
        )


def _evaluate(run: Run, epoch: int) -> bool:
    """Evaluate on the validation set, keep the best AP; returns whether this one is the best so far."""
    started = time.perf_counter()
    evaluation = model_evaluation(
        validation_network(run.ema.module if run.ema else run.module, run.config),
        run.data.val,
        run.data.val_records,
        run.data.collate,
        run.device,
        batch_size=max(run.config.batch_size // run.info.world_size, 1),
        workers=run.config.workers,
        autocast=run.autocast,
        max_detections=run.config.eval_max_detections,
    )
    metrics = evaluation.results
    run.last_eval_s = time.perf_counter() - started
    run.clock.pause(run.last_eval_s)
    run.last_eval_end_s = run.clock.elapsed()
    run.final_metrics = metrics
    improved = metrics["AP"] > run.best_ap
    if improved:
        run.best_ap, run.best_iteration = metrics["AP"], run.iteration
    summary = {k: v for k, v in metrics.items() if k != "per_class"}
    _emit(run, EvaluationEnded(run.iteration, run.epoch_progress, summary, run.last_eval_s, improved, evaluation))
    if run.info.is_main:
        save_results(run.out_dir / "eval" / f"epoch_{math.ceil(run.epoch_progress):03d}.json", metrics)
        logger.info("evaluation after epoch %d (%.1f s):\n%s", epoch + 1, run.last_eval_s, format_results(metrics))
    return improved


def _count_patience(run: Run, improved: bool, final: bool) -> None:
    """Count evaluations without a better AP; stop the run once they reach ``patience`` (rank 0 decides,
    everyone follows: only its AP is sure to be the whole validation set's)."""
    run.evaluations_since_best = 0 if improved else run.evaluations_since_best + 1
    patience = run.config.patience
    if not patience or final:
        return
    run.early_stopped = bool(broadcast_object(run.evaluations_since_best >= patience if run.info.is_main else None))
    if run.early_stopped and run.info.is_main:
        logger.info(
            "early stop: the validation AP did not improve in %d evaluations (patience %d); best %.3f at iteration "
            "%d, in model_best.safetensors",
            run.evaluations_since_best,
            patience,
            run.best_ap,
            run.best_iteration,
        )


def _save_due(run: Run, always: bool) -> bool:
    """Write ``last.pt`` at this epoch end? When ``always`` (the end of the run, an evaluation), else when
    :data:`_SAVE_EVERY_S` run seconds passed since it was last written (``checkpoint_interval`` saves
    count); rank 0 decides for every process, as each takes part in a save."""
    due = always or run.clock.elapsed() - run.last_save_end_s >= _SAVE_EVERY_S
    return bool(broadcast_object(due if run.info.is_main else None))


def _finish(run: Run) -> TrainResult:
    best = run.out_dir / "best.pt"
    weights, best_weights = export_weights(run)
    if run.info.is_main and weights is not None:
        best_note = (
            f"; the best validation AP ({run.best_ap:.3f}, iteration {run.best_iteration}) is in {best_weights.name}, "
            "picked on the validation set"
            if best_weights is not None
            else ""
        )
        logger.info("%s holds the final weights%s", weights, best_note)
    best_ap = run.best_ap if run.final_metrics is not None else None
    reason = _stop_reason(run)
    _emit(run, RunEnded(weights, best_weights, run.iteration, reason, best_ap))
    return TrainResult(
        out_dir=run.out_dir,
        last_checkpoint=run.out_dir / "last.pt",
        best_checkpoint=best if best.is_file() else None,
        weights=weights,
        best_weights=best_weights,
        iterations=run.iteration,
        epochs=run.epoch_progress,
        final_metrics=run.final_metrics,
        best_ap=best_ap,
        stopped_by_time_budget=run.stopped_by_time_budget,
        stop_reason=reason,
    )


def _stop_reason(run: Run) -> StopReason:
    if run.early_stopped:
        return "early stop"
    budget_set_the_length = run.config.time_budget_minutes is not None and (
        run.config.epochs is None or run.stopped_by_time_budget
    )
    return "time budget" if budget_set_the_length else "finished"
