import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gfocal.engine import TrainData, TrainingDiverged, load_checkpoint, train, trainer
from support import standin_run
from support.standin import RandomDetections, TinyDetector, collate
from support.tiny_run import tiny_config, tiny_data

TESTS = Path(__file__).parents[1]
SRC = TESTS.parent / "src"


@pytest.mark.parametrize("ema", [False, True])
def test_on_step_sees_every_step_on_the_evaluated_network_in_eval_mode(tmp_path, ema):
    torch.manual_seed(0)
    model, seen = TinyDetector(), []

    def on_step(iteration, network):
        seen.append((iteration, network.training, network is model))
        network([torch.zeros(3, 32, 32, dtype=torch.uint8)])  # an eval-mode forward: detections, no training call

    result = train(tiny_config(tmp_path, ema=ema), model=model, data=tiny_data(), on_step=on_step)
    # The EMA's copy is what evaluation (and so the hook) sees when EMA is on; the model itself otherwise.
    assert seen == [(i, False, not ema) for i in range(1, result.iterations + 1)]
    assert model.calls == result.iterations  # every step's forward ran in training mode (the hook's did not count)


def test_short_run_writes_checkpoints_logs_plots_and_evaluation(tmp_path):
    torch.manual_seed(0)
    result = train(tiny_config(tmp_path, ema=True), model=TinyDetector(), data=tiny_data())
    out = result.out_dir
    assert result.iterations == 8 and result.epochs == 2.0 and not result.stopped_by_time_budget
    assert result.best_checkpoint == out / "best.pt" and result.final_metrics["AP"] >= 0
    for name in ("last.pt", "config.yaml", "metrics.jsonl", "loss.png", "ap.png", "eval/epoch_002.json"):
        assert (out / name).is_file(), name
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if r["kind"] == "train"]
    assert [r["iteration"] for r in train_rows] == list(range(1, 9))
    assert {"loss", "loss_box", "loss_cls", "lr", "iter_time", "data_time", "num_pos"} <= set(train_rows[0])
    assert [r["epoch"] for r in rows if r["kind"] == "eval"] == [1.0, 2.0]
    state = load_checkpoint(out / "last.pt")
    assert state["iteration"] == 8 and state["config"] == result_config(out)
    assert set(state) >= {"model", "optimizer", "schedule", "ema", "sampler", "rng", "elapsed_s"}
    # lr scaled by batch_size / 16, x0.1 after epoch 1
    assert train_rows[-1]["lr"] == pytest.approx(0.01 * 4 / 16 * 0.1)


def result_config(out):
    import yaml

    return yaml.safe_load((out / "config.yaml").read_text())


def test_resume_refuses_a_changed_recipe(tmp_path):
    torch.manual_seed(0)
    train(tiny_config(tmp_path, epochs=1, step_epochs=()), model=TinyDetector(), data=tiny_data())
    with pytest.raises(ValueError, match=r"differs from the checkpoint's in lr: 0.01 -> 0.02"):
        train(
            tiny_config(tmp_path, epochs=1, step_epochs=(), lr=0.02, resume="auto"),
            model=TinyDetector(),
            data=tiny_data(),
        )


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    torch.manual_seed(0)
    with pytest.raises(
        TrainingDiverged, match=r"non-finite loss at iteration 5 \(epoch 2\).*last\.pt \(iteration 4\)"
    ) as err:
        train(tiny_config(tmp_path, checkpoint_interval=2), model=TinyDetector(nan_at=5), data=tiny_data())
    assert err.value.iteration == 5
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    assert state["iteration"] == 4
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_time_budget_stops_early_compresses_schedule_and_still_evaluates(tmp_path):
    torch.manual_seed(0)
    budget_s = 3.0
    started = time.perf_counter()
    result = train(
        tiny_config(
            tmp_path,
            epochs=100,
            step_epochs=(80,),
            time_budget_minutes=budget_s / 60,
            log_interval=10,
            precision="fp32",
        ),
        model=TinyDetector(sleep_s=0.03),
        data=tiny_data(),
    )
    elapsed = time.perf_counter() - started
    assert result.stopped_by_time_budget and 10 < result.iterations < 400
    state = load_checkpoint(result.out_dir / "last.pt")
    assert state["elapsed_s"] < budget_s + 0.5 and elapsed < budget_s + 5.0  # the rest: set-up, final eval, plots
    assert result.final_metrics is not None
    schedule = state["schedule"]
    assert schedule["total_iters"] == result.iterations
    assert schedule["milestones"] == [round(80 * 4 * result.iterations / 400)]


def launch_standin(out_dir, resume, sleep_s, precision):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(TESTS)])}
    return subprocess.Popen(
        [sys.executable, "-m", "support.standin_run", str(out_dir), resume, str(sleep_s), precision],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.filterwarnings("ignore:bf16 requested on a CPU without native bf16")
def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path, precision):
    killed = launch_standin(tmp_path / "killed", "", 0.1, precision)
    torch.manual_seed(0)  # the reference runs here, while the subprocess starts
    train(
        standin_run.config(str(tmp_path / "reference"), precision=precision),
        model=TinyDetector(),
        data=standin_run.data(),
    )
    last = tmp_path / "killed" / "last.pt"
    deadline = time.time() + 60
    while not (last.is_file() and load_checkpoint(last)["iteration"] >= 6):
        assert killed.poll() is None and time.time() < deadline, "training ended before it could be killed"
        time.sleep(0.05)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    interrupted_at = load_checkpoint(last)["iteration"]
    assert 6 <= interrupted_at < 24
    resumed = launch_standin(tmp_path / "killed", "auto", 0.0, precision)
    assert resumed.wait(timeout=60) == 0, resumed.stderr.read().decode()

    expected, actual = (load_checkpoint(tmp_path / run / "last.pt") for run in ("reference", "killed"))
    assert actual["iteration"] == expected["iteration"] == 24
    for part in ("model", "ema"):
        flat_expected = expected[part]["module"] if part == "ema" else expected[part]
        flat_actual = actual[part]["module"] if part == "ema" else actual[part]
        for name, tensor in flat_expected.items():
            torch.testing.assert_close(flat_actual[name], tensor, rtol=0, atol=1e-6)
    # The optimiser's state (AdamW's moments and step counts by default) resumes too.
    for a, b in zip(expected["optimizer"]["state"].values(), actual["optimizer"]["state"].values()):
        assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], rtol=0, atol=1e-6) for k in a)
    rows = [json.loads(line) for line in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows if r["kind"] == "train"] == list(range(1, 25))


class BatchRecorder(TinyDetector):
    """Records each training batch's image ids and pixel sums (which show the seeded flips)."""

    def __init__(self, seen):
        super().__init__()
        self.seen = seen

    def forward(self, images, targets=None):
        if self.training:
            self.seen.append([(t["image_id"], int(image.sum())) for image, t in zip(images, targets)])
        return super().forward(images, targets)


class Stop(Exception):
    pass


def test_a_run_killed_mid_epoch_resumes_through_epoch_ends_with_the_same_batches(tmp_path):
    """One loader for the run, 2 workers prefetching across epoch ends: stopped at step 7 (mid-epoch 2, saved at
    step 6), resumed to the end of epoch 4, the run sees the batches and ends with the weights of an uninterrupted one."""
    config = tiny_config(tmp_path, epochs=4, step_epochs=(2,), workers=2, checkpoint_interval=3, log_interval=100)
    reference = []
    torch.manual_seed(0)
    train(config.replace(out_dir=str(tmp_path / "reference")), model=BatchRecorder(reference), data=tiny_data())
    assert len(reference) == 16 and len({ids for batch in reference for ids, _ in batch}) == 16

    def stop_after_7(iteration, network):
        if iteration == 7:
            raise Stop

    seen = []
    torch.manual_seed(0)
    with pytest.raises(Stop):
        train(config, model=BatchRecorder(seen), data=tiny_data(), on_step=stop_after_7)
    assert load_checkpoint(tmp_path / "run" / "last.pt")["iteration"] == 6
    del seen[6:]  # step 7 was not saved: the resumed run takes it again
    torch.manual_seed(1)  # the resumed run restores the generators' states from the checkpoint
    train(config.replace(resume="auto"), model=BatchRecorder(seen), data=tiny_data())
    assert seen == reference
    expected, actual = (load_checkpoint(tmp_path / run / "last.pt") for run in ("reference", "run"))
    assert actual["iteration"] == expected["iteration"] == 16
    for name, tensor in expected["model"].items():
        torch.testing.assert_close(actual["model"][name], tensor, rtol=0, atol=0)


def saves_of(monkeypatch, save_every_s):
    """The iterations and run seconds at which last.pt is written, with a save every ``save_every_s`` at most."""
    saves, real_save = [], trainer.save_training_state
    monkeypatch.setattr(trainer, "_SAVE_EVERY_S", save_every_s)

    def recording_save(run, best):
        saves.append((run.iteration, run.clock.elapsed()))
        real_save(run, best)

    monkeypatch.setattr(trainer, "save_training_state", recording_save)
    return saves


@pytest.mark.parametrize(
    ("save_every_s", "changes", "iterations"),
    [
        (math.inf, {}, [12]),  # only at the end
        (0.0, {}, [4, 8, 12]),  # at every epoch end
        (math.inf, {"checkpoint_interval": 5}, [5, 10, 12]),  # checkpoint_interval saves whatever the time
        (math.inf, {"eval_interval": 2, "validate": True}, [8, 12]),  # after each evaluation
    ],
)
def test_last_pt_is_saved_at_epoch_ends_only_when_due(tmp_path, monkeypatch, save_every_s, changes, iterations):
    saves = saves_of(monkeypatch, save_every_s)
    validate = changes.pop("validate", False)
    data = tiny_data() if validate else TrainData(RandomDetections(16), collate)
    torch.manual_seed(0)
    train(tiny_config(tmp_path, epochs=3, **changes), model=TinyDetector(), data=data)
    assert [iteration for iteration, _ in saves] == iterations
    assert load_checkpoint(tmp_path / "run" / "last.pt")["iteration"] == 12


def test_epoch_end_saves_keep_their_interval_in_run_seconds(tmp_path, monkeypatch):
    """Epochs of 4 steps of 60 ms and more, a save at most every second: later epoch ends are skipped, the last kept."""
    saves = saves_of(monkeypatch, 1.0)
    torch.manual_seed(0)
    train(
        tiny_config(tmp_path, epochs=8), model=TinyDetector(sleep_s=0.06), data=TrainData(RandomDetections(16), collate)
    )
    iterations, seconds = zip(*saves)
    assert iterations[-1] == 32 and 1 <= len(saves) < 8
    assert all(i % 4 == 0 for i in iterations)
    assert all(later - earlier >= 1.0 for earlier, later in zip(seconds[:-1], seconds[1:-1]))
    assert seconds[0] >= 1.0 or len(saves) == 1
