"""The trackers on tiny real runs, read back with each tool's own reader; a missing extra is one clear line."""

import csv
import json
import shutil
import sys

import pytest
import torch
from PIL import Image

from gfocal.engine import CheckpointSaved, TrainSetupError, train
from support.standin import TinyDetector
from support.tiny_run import tiny_config, tiny_data


def eval_rows(out_dir):
    return [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines() if '"eval"' in line]


def test_results_csv_has_a_row_per_evaluation_with_the_mean_losses_since_the_previous(tmp_path):
    torch.manual_seed(0)
    result = train(tiny_config(tmp_path, epochs=3), model=TinyDetector(), data=tiny_data())
    rows = list(csv.DictReader((result.out_dir / "results.csv").open()))
    expected = eval_rows(result.out_dir)
    assert [(int(r["iteration"]), float(r["epoch"])) for r in rows] == [(4, 1.0), (8, 2.0), (12, 3.0)]
    assert [float(r["AP"]) for r in rows] == [e["AP"] for e in expected]
    assert {"loss", "loss_box", "loss_cls", "lr", "eval_s", "AP50", "AR100"} <= set(rows[0])
    # The loss columns are the means of the steps since the previous evaluation (metrics.jsonl has each step).
    steps = [json.loads(line) for line in (result.out_dir / "metrics.jsonl").read_text().splitlines()]
    second_epoch = [s["loss"] for s in steps if s["kind"] == "train" and 4 < s["iteration"] <= 8]
    assert float(rows[1]["loss"]) == pytest.approx(sum(second_epoch) / 4)


class KeepCheckpoint:
    """A subscriber that copies ``last.pt`` aside when it is written at ``iteration``."""

    def __init__(self, iteration, copy):
        self.iteration, self.copy = iteration, copy

    def on_event(self, event):
        if isinstance(event, CheckpointSaved) and event.kind == "last" and event.iteration == self.iteration:
            shutil.copy(event.path, self.copy)


def test_a_run_resumed_from_an_earlier_checkpoint_drops_the_rows_it_takes_again(tmp_path):
    torch.manual_seed(0)
    config = tiny_config(tmp_path, epochs=3)
    train(config, model=TinyDetector(), data=tiny_data(), callbacks=[KeepCheckpoint(4, tmp_path / "at4.pt")])
    train(config.replace(resume=str(tmp_path / "at4.pt")), model=TinyDetector(), data=tiny_data())
    rows = list(csv.DictReader((tmp_path / "run" / "results.csv").open()))
    assert [int(r["iteration"]) for r in rows] == [4, 8, 12]
    assert [r["iteration"] for r in eval_rows(tmp_path / "run")] == [4, 8, 12]


def test_tensorboard_gets_the_losses_lr_metrics_pr_curves_and_previews(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util.tensor_util import make_ndarray

    data = tiny_data()
    for index, image in enumerate(data.val_records.images):  # the stand-in's validation images, as files
        image.path, image.file_name = tmp_path / f"val{index}.png", f"val{index}.png"
        Image.fromarray(data.val.images[index].permute(1, 2, 0).numpy()).save(image.path)
    torch.manual_seed(0)
    result = train(tiny_config(tmp_path, loggers=("tensorboard",)), model=TinyDetector(), data=data)
    events = EventAccumulator(str(result.out_dir / "tensorboard"), size_guidance={"images": 0, "tensors": 0})
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert {"train/loss", "train/loss_box", "train/loss_cls", "train/lr", "val/AP", "val/AP50"} <= set(scalars)
    steps = [json.loads(line) for line in (result.out_dir / "metrics.jsonl").read_text().splitlines()]
    train_rows = [s for s in steps if s["kind"] == "train"]
    loss = events.Scalars("train/loss")
    assert [point.step for point in loss] == [row["iteration"] for row in train_rows]
    assert [point.value for point in loss] == pytest.approx([row["loss"] for row in train_rows], rel=1e-6)
    assert [(p.step, p.value) for p in events.Scalars("val/AP")] == [(4, 0.0), (8, 0.0)]
    # At each evaluation: the four validation images, and the PR curves of all classes and of each one present.
    assert set(events.Tags()["images"]) == {f"val/images/val{i}.png" for i in range(4)}
    assert all([p.step for p in events.Images(tag)] == [4, 8] for tag in events.Tags()["images"])
    present = {data.val_records.class_names[int(label)] for label in data.val.labels}
    assert set(events.Tags()["tensors"]) == {"val/pr_curve/(all classes)", *(f"val/pr_curve/{c}" for c in present)}
    # The stand-in's one 8 x 8 box an image never overlaps a 16 x 16 ground truth enough: 4 false detections.
    pooled = make_ndarray(events.Tensors("val/pr_curve/(all classes)")[-1].tensor_proto)  # rows TP, FP, TN, FN
    assert pooled[[0, 1, 3], 0].tolist() == [0, 4, 4]


def test_mlflow_gets_the_config_metrics_and_the_final_and_best_weights(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    from gfocal.models import gfl_small

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    config = tiny_config(tmp_path, epochs=1, loggers=("mlflow",), model_overrides={"min_size": 64, "max_size": 64})
    torch.manual_seed(0)
    # A gfocal detector, so that the run exports a weights file for MLflow to keep.
    result = train(config, model=gfl_small(3, min_size=64, max_size=64), data=tiny_data())

    client = MlflowClient(f"sqlite:///{result.out_dir.resolve() / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("gfocal")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "run" and run.info.status == "FINISHED"
    assert run.data.tags["stop_reason"] == "finished"
    params = run.data.params
    assert params["lr"] == "0.01" and params["epochs"] == "1" and params["model_overrides.min_size"] == "64"
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert [point.step for point in history] == [1, 2, 3, 4]
    assert [p.value for p in client.get_metric_history(run.info.run_id, "val/AP")] == [result.final_metrics["AP"]]
    stored = {a.path: a.file_size for a in client.list_artifacts(run.info.run_id)}
    assert stored == {
        name: (result.out_dir / name).stat().st_size for name in ("model.safetensors", "model_best.safetensors")
    }


@pytest.mark.parametrize(("tracker", "library"), [("tensorboard", "TensorBoard"), ("mlflow", "MLflow")])
def test_a_missing_extra_is_one_line_that_says_what_to_install(tmp_path, monkeypatch, tracker, library):
    monkeypatch.setitem(sys.modules, tracker, None)  # what an environment without the library imports
    with pytest.raises(TrainSetupError) as error:
        train(tiny_config(tmp_path, loggers=(tracker,)), model=TinyDetector(), data=tiny_data())
    assert str(error.value) == f'--log {tracker} needs {library}: pip install "gfocal[{tracker}]"'
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_an_unknown_tracker_names_the_ones_there_are(tmp_path):
    with pytest.raises(TrainSetupError, match="unknown logger 'wandb'; available: csv, tensorboard, mlflow"):
        train(tiny_config(tmp_path, loggers=("wandb",)), model=TinyDetector(), data=tiny_data())
