"""The progress display: a bar per epoch on a terminal, closed before the epoch end's evaluation; else log lines."""

import logging
from pathlib import Path

from gfocal.engine import RunEnded, RunStarted, StepEnded
from gfocal.engine import progress as progress_module
from gfocal.engine.progress import Progress


def steps(first, last, total):
    return [StepEnded(i, i / 4, total, {"loss_cls": 1.0}, 1.0, 0.01, 0.5, 0.0, 8.0) for i in range(first, last + 1)]


def started(iteration=0):
    return RunStarted({}, Path("run"), iteration, steps_per_epoch=4, setup={})


def test_a_bar_per_epoch_closed_at_its_last_step_and_a_resumed_run_starts_mid_epoch(capsys):
    shown = Progress(terminal=True)
    shown.on_event(started(iteration=2))
    bars = []
    for step in steps(3, 8, total=8):
        shown.on_event(step)
        bars.append(None if shown.bar is None else (shown.bar.desc, shown.bar.n))
    assert bars == [("epoch 1/2", 3), None, ("epoch 2/2", 1), ("epoch 2/2", 2), ("epoch 2/2", 3), None]
    shown.on_event(RunEnded(None, None, 8, "finished", None))
    assert "epoch 2/2" in capsys.readouterr().err


def test_without_a_terminal_a_line_at_most_every_interval(caplog, monkeypatch):
    monkeypatch.setattr(progress_module, "_LINE_EVERY_S", 0.0)
    logged = Progress(terminal=False)
    logged.on_event(started())
    with caplog.at_level(logging.INFO, logger="gfocal.engine.progress"):
        for step in steps(1, 2, total=8):
            logged.on_event(step)
    assert [r.getMessage() for r in caplog.records] == [
        "iteration 1/8, loss 1.0000, 0.50 s/step",
        "iteration 2/8, loss 1.0000, 0.50 s/step",
    ]
    assert logged.bar is None
