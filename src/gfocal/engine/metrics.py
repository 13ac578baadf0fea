"""The metrics log (one JSON object per line) and the plots drawn from it at the end of training.

:class:`MetricsLogger` is the subscriber (:mod:`gfocal.engine.events`) that writes both.

Rows have ``"kind": "train"`` (loss terms, ``loss``, ``lr``, ``iter_time``,
``data_time`` in seconds, model counters) or ``"kind": "eval"`` (COCO metrics),
plus ``epoch`` (1-based) and ``iteration`` (optimiser steps completed). The
first row, ``"kind": "setup"`` (iteration 0), records what the run trains with:
``batch_size`` (images per step, all processes), ``requested_batch_size`` (the
config's), ``train_images``, ``world_size`` and ``base_lr`` (before the schedule).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gfocal.engine.events import EvaluationEnded, Event, RunEnded, RunStarted, StepEnded
from gfocal.fileio import atomic_write_bytes

__all__ = ["MetricsLog", "MetricsLogger", "plot_metrics"]


class MetricsLog:
    """Appends rows to ``path``; a disabled log (non-main ranks) ignores writes."""

    def __init__(self, path: str | os.PathLike[str], enabled: bool = True) -> None:
        self.path, self.enabled = Path(path), enabled

    def write(self, row: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")

    def rows(self) -> list[dict[str, Any]]:
        """All complete rows (a line cut short by a crash is skipped)."""
        if not self.path.is_file():
            return []
        rows = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return rows

    def truncate_after(self, iteration: int) -> None:
        """Drop rows logged after ``iteration``: a resumed run repeats those steps."""
        if not self.enabled or not self.path.is_file():
            return
        kept = [row for row in self.rows() if row.get("iteration", 0) <= iteration]
        # Atomic: a crash while resuming must not lose the history of the steps kept.
        atomic_write_bytes(self.path, "".join(json.dumps(row) + "\n" for row in kept).encode("utf-8"))


class MetricsLogger:
    """Writes ``metrics.jsonl`` from a run's events: a ``"train"`` row with the means of every
    ``log_interval`` steps, an ``"eval"`` row per evaluation; draws the curves when the run ends.

    A fresh run starts a fresh log (with its ``"setup"`` row); a resumed one drops the rows logged after its
    checkpoint, since it takes those steps again.
    """

    def __init__(self, out_dir: str | os.PathLike[str], log_interval: int) -> None:
        self.out_dir, self.log_interval = Path(out_dir), log_interval
        self.log = MetricsLog(self.out_dir / "metrics.jsonl")
        self.window: list[dict[str, float]] = []

    def on_event(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self._start(event)
        elif isinstance(event, StepEnded):
            self._step(event)
        elif isinstance(event, EvaluationEnded):
            metrics = {k: v for k, v in event.metrics.items() if k != "per_class"}
            self.log.write(
                {"kind": "eval", "epoch": event.epoch, "iteration": event.iteration, "eval_s": event.seconds, **metrics}
            )
        elif isinstance(event, RunEnded):
            plot_metrics(self.log.rows(), self.out_dir)

    def _start(self, event: RunStarted) -> None:
        if event.iteration:
            self.log.truncate_after(event.iteration)
            return
        self.log.path.unlink(missing_ok=True)  # a fresh run in an old folder starts a fresh log
        self.log.write({"kind": "setup", "epoch": 0.0, "iteration": 0, **event.setup})

    def _step(self, event: StepEnded) -> None:
        self.window.append(
            {
                "loss": event.loss,
                **event.losses,
                "lr": event.lr,
                **event.counters,
                "iter_time": event.step_s,
                "data_time": event.data_s,
            }
        )
        if event.iteration % self.log_interval:
            return
        keys = self.window[-1].keys()
        means = {k: sum(row.get(k, 0.0) for row in self.window) / len(self.window) for k in keys}
        # The learning rate is the step's, not a mean: the schedule is a curve, not a noisy measurement.
        self.log.write({"kind": "train", "epoch": event.epoch, "iteration": event.iteration, **means, "lr": event.lr})
        self.window.clear()


def plot_metrics(rows: list[dict[str, Any]], out_dir: str | os.PathLike[str]) -> list[Path]:
    """Draw ``loss.png`` (loss terms per iteration) and ``ap.png`` (AP, AP50, AP75 per epoch); returns the files."""
    from matplotlib.figure import Figure  # no pyplot: renders with Agg, leaves the user's backend alone

    out_dir = Path(out_dir)
    written = []
    train = [r for r in rows if r.get("kind") == "train"]
    evals = [r for r in rows if r.get("kind") == "eval"]
    if train:
        terms = [k for k in train[-1] if k == "loss" or k.startswith("loss_")]
        fig = Figure(figsize=(7, 4))
        ax = fig.subplots()
        for term in terms:
            ax.plot([r["iteration"] for r in train], [r[term] for r in train], label=term)
        ax.set(xlabel="iteration", ylabel="loss", title="training loss")
        ax.legend()
        written.append(_save(fig, out_dir / "loss.png"))
    if evals:
        fig = Figure(figsize=(7, 4))
        ax = fig.subplots()
        for metric in ("AP", "AP50", "AP75"):
            ax.plot([r["epoch"] for r in evals], [r[metric] for r in evals], marker="o", label=metric)
        ax.set(xlabel="epoch", ylabel="COCO AP", title="evaluation", ylim=(0, 1))
        ax.legend()
        written.append(_save(fig, out_dir / "ap.png"))
    return written


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path
