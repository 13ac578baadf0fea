"""benchmarks/logging_cost.py: a subscriber's seconds are split into once-per-run and per-step events."""

from __future__ import annotations

import time
from pathlib import Path

import logging_cost

from gfocal.engine.events import RunEnded, StepEnded


class SlowAtTheEnd:
    """Nothing per step; 50 ms when the run ends (as drawing the curves or storing an artifact would)."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.seen = folder, []

    def on_event(self, event) -> None:
        self.seen.append(type(event).__name__)
        if isinstance(event, RunEnded):
            time.sleep(0.05)


def test_replay_charges_the_run_end_once_and_not_to_the_steps(tmp_path: Path):
    step = StepEnded(1, 0.5, 2, {"loss_qfl": 1.0}, 1.0, 0.01, 2.0, 0.1, 8.0, {})
    end = RunEnded(None, None, 2, "finished", None)
    built: list[SlowAtTheEnd] = []

    def build(folder: Path) -> SlowAtTheEnd:
        built.append(SlowAtTheEnd(folder))
        return built[-1]

    seconds = logging_cost.replay(build, [step, step, end], tmp_path)
    assert built[0].seen == ["StepEnded", "StepEnded", "RunEnded"]  # every event, in order
    assert seconds["once_per_run"] >= 0.05
    assert seconds["per_step_events"] < seconds["once_per_run"]


def test_every_tracker_is_measured():
    names = logging_cost.subscribers(log_interval=10)
    assert {"metrics.jsonl + curves", "csv tracker", "tensorboard tracker", "mlflow tracker"} <= set(names)
