"""What logging costs a training step: each subscriber, timed on one real run's own events.

    python benchmarks/logging_cost.py --data D/train.json --val-data D/val.json --epochs 15 --out runs/logging_cost \\
        [--set key=value ...] [--json PATH]

One real training run (the default recipe, its default ``log_interval`` and evaluation every epoch, ``--set``
on top) records every event it emits (:mod:`gfocal.engine.events`); each :class:`~gfocal.engine.events.StepEnded`
carries its step's wall seconds. Then every subscriber a run can have gets that same event stream, in order, in
a fresh folder, and the seconds of its ``on_event`` calls are summed: ``metrics.jsonl`` and the curves
(``MetricsLogger``), the progress display (``Progress``, both as a terminal bar and as log lines), and the
trackers of :data:`gfocal.engine.loggers.TRACKERS` (``results.csv``, TensorBoard, MLflow) whose library is
installed. The trainer runs its subscribers inside the loop, so these seconds are what logging adds to a run.

Reported per subscriber: the seconds spent on the per-step and per-evaluation events (steps, evaluations,
checkpoints) per training step, as a share of the mean step; of those, the seconds per evaluation (TensorBoard
draws its precision-recall curves and preview images there); and, apart, what it costs once per run (its
construction, the run's start, and its end: curves drawn, the weights file stored as an MLflow artifact).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import add_json_argument, report

from gfocal.engine import load_config, train
from gfocal.engine.events import EvaluationEnded, Event, RunEnded, RunStarted, StepEnded
from gfocal.engine.loggers import TRACKERS
from gfocal.engine.metrics import MetricsLogger
from gfocal.engine.progress import Progress

ONCE_PER_RUN = (RunStarted, RunEnded)


class Recorder:
    """A subscriber that keeps every event of the run it is given to."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def on_event(self, event: Event) -> None:
        self.events.append(event)


def subscribers(log_interval: int) -> dict[str, Callable[[Path], Any]]:
    """Every subscriber a run can have, by name: a constructor taking a fresh folder."""
    built_in = {
        "metrics.jsonl + curves": lambda folder: MetricsLogger(folder, log_interval),
        "progress bar (terminal)": lambda folder: Progress(terminal=True),
        "progress lines (log file)": lambda folder: Progress(terminal=False),
    }
    return built_in | {f"{name} tracker": tracker for name, tracker in TRACKERS.items()}


def replay(build: Callable[[Path], Any], events: list[Event], folder: Path) -> dict[str, float]:
    """Seconds a subscriber built in ``folder`` spends: constructing it, on the once-per-run events, on the rest
    (``per_step_events``), and of those on the evaluations."""
    seconds = {"construct": 0.0, "once_per_run": 0.0, "per_step_events": 0.0, "evaluations": 0.0}
    started = time.perf_counter()
    subscriber = build(folder)
    seconds["construct"] = time.perf_counter() - started
    # The progress bar writes to stderr; what it prints is not the measurement's business, its work is.
    with contextlib.redirect_stderr(io.StringIO()):
        for event in events:
            started = time.perf_counter()
            subscriber.on_event(event)
            spent = time.perf_counter() - started
            seconds["once_per_run" if isinstance(event, ONCE_PER_RUN) else "per_step_events"] += spent
            if isinstance(event, EvaluationEnded):
                seconds["evaluations"] += spent
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="training dataset (COCO json, VOC folder or YOLO yaml)")
    parser.add_argument("--val-data", required=True, help="validation dataset: the run's evaluation events")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--out", type=Path, required=True, help="the training run's folder")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="TrainConfig overrides")
    add_json_argument(parser, "logging_cost")
    args = parser.parse_args()

    config = load_config(
        overrides=args.set,
        fields={"train_data": args.data, "val_data": args.val_data, "epochs": args.epochs, "out_dir": str(args.out)},
    )
    recorder = Recorder()
    print(f"training {args.out} ({args.epochs} epochs) to record its events", file=sys.stderr)
    train(config, callbacks=[recorder])
    steps = [event.step_s for event in recorder.events if isinstance(event, StepEnded)]
    evaluations = sum(isinstance(event, EvaluationEnded) for event in recorder.events)
    mean_step = statistics.fmean(steps)
    rows = []
    for name, build in subscribers(config.log_interval).items():
        try:
            with tempfile.TemporaryDirectory(prefix="logging_cost_") as folder:
                seconds = replay(build, recorder.events, Path(folder))
        except Exception as error:  # a tracker whose library is missing: say so, measure the others
            rows.append({"subscriber": name, "skipped": f"{type(error).__name__}: {error}"})
            continue
        per_step = seconds["per_step_events"] / len(steps)
        rows.append(
            {
                "subscriber": name,
                "per_step_ms": per_step * 1000,
                "share_of_step": per_step / mean_step,
                "per_evaluation_ms": seconds["evaluations"] / max(evaluations, 1) * 1000,
                "once_per_run_s": seconds["construct"] + seconds["once_per_run"],
            }
        )
        print(rows[-1], file=sys.stderr, flush=True)
    report(
        {
            "data": args.data,
            "val_data": args.val_data,
            "set": args.set,
            "log_interval": config.log_interval,
            "eval_interval": config.eval_interval,
            "steps": len(steps),
            "evaluations": evaluations,
            "mean_step_s": mean_step,
            "rows": rows,
        },
        args.json,
    )


if __name__ == "__main__":
    main()
