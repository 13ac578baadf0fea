"""The training loop's events, seen by a subscriber on tiny real runs; early stopping on a run whose AP cannot improve."""

import json
import logging

import pytest
import torch

from gfocal.engine import (
    CheckpointSaved,
    EvaluationEnded,
    FirstStepTimed,
    PlanMade,
    RunEnded,
    RunFailed,
    RunStarted,
    StepEnded,
    TrainingDiverged,
    load_checkpoint,
    train,
)
from support.standin import TinyDetector
from support.tiny_run import tiny_config, tiny_data


class Recorder:
    """A subscriber that keeps every event."""

    def __init__(self):
        self.events = []

    def on_event(self, event):
        self.events.append(event)

    def of(self, kind):
        return [event for event in self.events if isinstance(event, kind)]


def outline(events):
    """Each event as (kind, iteration[, checkpoint kind]): the order a subscriber sees."""
    rows = []
    for event in events:
        if isinstance(event, CheckpointSaved):
            rows.append((event.kind, event.iteration))
        elif isinstance(event, (StepEnded, EvaluationEnded, RunStarted, RunEnded)):
            rows.append((type(event).__name__, getattr(event, "iteration", None) or getattr(event, "iterations", 0)))
    return rows


def test_a_run_tells_its_subscribers_every_step_evaluation_and_save_in_order(tmp_path):
    recorder = Recorder()
    config = tiny_config(tmp_path, checkpoint_interval=3)
    torch.manual_seed(0)
    result = train(config, model=TinyDetector(), data=tiny_data(), callbacks=[recorder])

    steps = [("StepEnded", i) for i in range(1, 9)]
    # 4 steps an epoch, a save every 3 steps, an evaluation and a save at each epoch end; the first evaluation
    # is the best so far (best.pt), the second's AP (0 again) is not better.
    assert outline(recorder.events) == [
        ("RunStarted", 0),
        *steps[:3],
        ("last", 3),
        steps[3],
        ("EvaluationEnded", 4),
        ("last", 4),
        ("best", 4),
        *steps[4:6],
        ("last", 6),
        *steps[6:],
        ("EvaluationEnded", 8),
        ("last", 8),
        ("RunEnded", 8),
    ]
    started = recorder.events[0]
    assert started.config == config.to_dict() and started.out_dir == result.out_dir and started.steps_per_epoch == 4
    assert started.setup == {"batch_size": 4, "requested_batch_size": 4, "train_images": 16, "world_size": 1,
                             "base_lr": pytest.approx(0.01 * 4 / 16)}  # fmt: skip

    # The metrics log is a subscriber too: its rows are the steps' values (log_interval 1: one row a step).
    rows = [json.loads(line) for line in (result.out_dir / "metrics.jsonl").read_text().splitlines()]
    for step, row in zip(recorder.of(StepEnded), [r for r in rows if r["kind"] == "train"], strict=True):
        assert set(step.losses) == {"loss_box", "loss_cls"} and step.counters == {
            "num_pos": 4.0,
            "grad_norm": row["grad_norm"],
        }
        assert step.loss == pytest.approx(sum(step.losses.values())) == pytest.approx(row["loss"])
        assert (step.lr, step.epoch, step.step_s, step.total_iterations) == (
            row["lr"],
            row["epoch"],
            row["iter_time"],
            8,
        )
        assert step.images_per_s == pytest.approx(4 / step.step_s)
    assert [step.lr for step in recorder.of(StepEnded)][-1] == pytest.approx(0.01 * 4 / 16 * 0.1)

    evaluations = recorder.of(EvaluationEnded)
    assert [(e.epoch, e.improved) for e in evaluations] == [(1.0, True), (2.0, False)]
    assert evaluations[-1].metrics == {k: v for k, v in result.final_metrics.items() if k != "per_class"}
    assert evaluations[-1].scalars["AP"] == 0.0 and "AP_per_iou" not in evaluations[-1].scalars
    assert [e.path.name for e in recorder.of(CheckpointSaved)] == [
        "last.pt",
        "last.pt",
        "best.pt",
        "last.pt",
        "last.pt",
    ]

    ended = recorder.events[-1]
    # The stand-in is no gfocal.models detector: no weights files are exported for it.
    assert (ended.reason, ended.iterations, ended.weights, ended.best_ap) == ("finished", 8, None, 0.0)
    assert result.stop_reason == "finished"


def test_the_first_step_time_and_the_plan_are_events_the_progress_subscriber_logs(tmp_path, caplog):
    recorder = Recorder()
    torch.manual_seed(0)
    with caplog.at_level(logging.INFO, logger="gfocal.engine.progress"):
        train(tiny_config(tmp_path), model=TinyDetector(), data=tiny_data(), callbacks=[recorder])

    kinds = [type(e).__name__ for e in recorder.events if not isinstance(e, CheckpointSaved)]
    # The first step's time right after it; the plan once the warm-up (3 steps) and 2 measured steps are done.
    assert kinds.index("FirstStepTimed") == kinds.index("StepEnded") + 1
    (first,) = recorder.of(FirstStepTimed)
    (plan,) = recorder.of(PlanMade)
    assert first.iteration == 1 and first.step_s == recorder.of(StepEnded)[0].step_s
    assert plan.iteration == 5 and plan.iterations == 8 and plan.epochs == pytest.approx(2.0)
    assert plan.seconds_per_step > 0 and plan.eta_s >= 0
    assert plan.evaluations == 1  # made in the second (last) epoch: only the final evaluation is to come
    messages = [record.getMessage() for record in caplog.records]
    assert any(m.startswith("first step: ") for m in messages)
    assert any(m.startswith("plan: 8 iterations (2.0 epochs)") and "1 evaluation to come" in m for m in messages)


@pytest.mark.parametrize(
    ("eval_interval", "patience", "evaluations", "warned"),
    [
        # A 5-epoch run planned in its 2nd epoch: evaluations at the ends of epochs 2, 3, 4 and the final one;
        # epoch 1's, the best (AP is 0 throughout), came before. Patience 3 stops it at epoch 4's end, 4 cannot.
        (1, 3, 4, False),
        (1, 4, 4, True),
        # Every 2nd epoch: epoch 2's (the first, so the best), epoch 4's and the final one. Patience 1 stops it
        # at epoch 4's, 2 cannot.
        (2, 1, 3, False),
        (2, 2, 3, True),
    ],
)
def test_the_plan_counts_the_evaluations_to_come_and_warns_of_a_patience_they_cannot_reach(
    tmp_path, caplog, eval_interval, patience, evaluations, warned
):
    recorder = Recorder()
    config = tiny_config(tmp_path, epochs=5, eval_interval=eval_interval, patience=patience)
    torch.manual_seed(0)
    with caplog.at_level(logging.INFO, logger="gfocal.engine.progress"):
        train(config, model=TinyDetector(), data=tiny_data(), callbacks=[recorder])
    (plan,) = recorder.of(PlanMade)
    assert plan.evaluations == evaluations
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    expected = f"patience {patience} cannot stop this run early: {evaluations} evaluations are to come"
    assert [w.startswith(expected) for w in warnings] == ([True] if warned else [])
    stopped = recorder.events[-1].reason == "early stop"
    assert stopped != warned  # the warning is right: the runs it spares stop early


def test_a_failed_run_tells_its_subscribers_why(tmp_path):
    recorder = Recorder()
    torch.manual_seed(0)
    with pytest.raises(TrainingDiverged):
        train(tiny_config(tmp_path), model=TinyDetector(nan_at=3), data=tiny_data(), callbacks=[recorder])
    assert [type(e).__name__ for e in recorder.events] == [
        "RunStarted",
        "StepEnded",
        "FirstStepTimed",
        "StepEnded",
        "RunFailed",
    ]
    failed = recorder.events[-1]
    assert isinstance(failed, RunFailed) and failed.iteration == 2 and "non-finite loss at iteration 3" in failed.error


@pytest.mark.parametrize(("patience", "iterations"), [(1, 8), (2, 12), (0, 20), (None, 20)])
def test_patience_stops_a_run_whose_validation_ap_cannot_improve(tmp_path, caplog, patience, iterations):
    """AP is 0 at every evaluation (see support.tiny_run): the first is the best, each later one is not better,
    so patience N stops the 5-epoch run after evaluation N + 1; 0 and None are off."""
    recorder = Recorder()
    torch.manual_seed(0)
    with caplog.at_level(logging.INFO, logger="gfocal.engine.trainer"):
        result = train(
            tiny_config(tmp_path, epochs=5, patience=patience),
            model=TinyDetector(),
            data=tiny_data(),
            callbacks=[recorder],
        )
    stopped = patience is not None and patience > 0
    assert result.iterations == iterations and len(recorder.of(EvaluationEnded)) == iterations // 4
    assert result.stop_reason == recorder.events[-1].reason == ("early stop" if stopped else "finished")
    assert ("early stop: the validation AP did not improve in" in caplog.text) == stopped
    # Both kept: the best (the first evaluation's) and the last state.
    assert load_checkpoint(result.out_dir / "best.pt")["iteration"] == 4
    last = load_checkpoint(result.out_dir / "last.pt")
    assert last["iteration"] == iterations and last["early_stopped"] == stopped


def test_an_early_stopped_run_resumes_to_its_end_without_training(tmp_path):
    config = tiny_config(tmp_path, epochs=5, patience=1)
    torch.manual_seed(0)
    train(config, model=TinyDetector(), data=tiny_data())
    model, recorder = TinyDetector(), Recorder()
    result = train(config.replace(resume="auto"), model=model, data=tiny_data(), callbacks=[recorder])
    assert model.calls == 0 and result.iterations == 8 and result.stop_reason == "early stop"
    assert outline(recorder.events) == [("RunStarted", 8), ("RunEnded", 8)]
