"""Run set-up for tiny training sets: the batch actually used, its learning rate, and resuming with it."""

import json
import logging

import pytest
import torch
import yaml

from gfocal.engine import TrainConfig, TrainData, load_checkpoint, train
from gfocal.engine.build import TrainSetupError
from gfocal.engine.distributed import DistInfo
from gfocal.engine.prepare import _check_training_set
from support.standin import RandomDetections, TinyDetector, collate


def config(tmp_path, **changes):
    values = dict(
        model="standin",
        epochs=1,
        batch_size=16,
        lr=0.01,
        warmup_iters=0,
        step_epochs=(1,),
        workers=0,
        log_interval=1,
        out_dir=str(tmp_path / "run"),
    )
    return TrainConfig(**{**values, **changes})


def test_a_set_smaller_than_the_batch_trains_as_one_batch_and_says_so(tmp_path, caplog):
    torch.manual_seed(0)
    with caplog.at_level(logging.WARNING, logger="gfocal.engine.prepare"):
        result = train(config(tmp_path), model=TinyDetector(), data=TrainData(RandomDetections(2), collate))
    assert result.iterations == 1 and result.epochs == 1.0
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning == (
        "the training set has 2 usable images, fewer than batch_size 16: training with batches of 2 "
        "(the whole set), lr 0.00125 (lr 0.01 x 2/16)"
    )
    rows = [json.loads(line) for line in (result.out_dir / "metrics.jsonl").read_text().splitlines()]
    assert rows[0] == {
        "kind": "setup",
        "epoch": 0.0,
        "iteration": 0,
        "batch_size": 2,
        "requested_batch_size": 16,
        "train_images": 2,
        "world_size": 1,
        "base_lr": 0.00125,
    }
    assert [r["lr"] for r in rows if r["kind"] == "train"] == [pytest.approx(0.01 * 2 / 16)]  # no warm-up, one step
    assert load_checkpoint(result.last_checkpoint)["sampler"]["batch_size"] == 2
    assert yaml.safe_load((result.out_dir / "config.yaml").read_text())["batch_size"] == 16  # the request is kept


def test_resume_keeps_the_batch_and_refuses_a_set_that_changed_it(tmp_path):
    torch.manual_seed(0)
    train(
        config(tmp_path, epochs=2, step_epochs=(2,), batch_size=4),
        model=TinyDetector(),
        data=TrainData(RandomDetections(2), collate),
    )
    again = config(tmp_path, epochs=2, step_epochs=(2,), batch_size=4, resume="auto")
    assert train(again, model=TinyDetector(), data=TrainData(RandomDetections(2), collate)).iterations == 2
    with pytest.raises(
        TrainSetupError,
        match=r"last\.pt: it trained with batches of 2 images, this run would use 4 "
        r"\(batch_size 4, 8 usable training images now\)",
    ):
        train(again, model=TinyDetector(), data=TrainData(RandomDetections(8), collate))


@pytest.mark.parametrize(
    "images, batch_size, processes, expected",
    [
        (20, 16, 1, 16),  # enough images: the request
        (5, 16, 2, 4),  # the whole set, rounded down so that each process gets as many images
        (2, 16, 2, 2),
        (1, 16, 2, r"1 usable images, fewer than the 2 processes"),
        (0, 16, 1, r"0 usable images, nothing to train"),
        (20, 3, 2, r"batch_size 3 is not divisible by the 2 processes"),
    ],
)
def test_the_batch_is_the_request_or_the_whole_set_split_evenly(tmp_path, images, batch_size, processes, expected):
    data = TrainData(RandomDetections(images) if images else [], collate)
    run_config, info = config(tmp_path, batch_size=batch_size), DistInfo(rank=1, world_size=processes)
    if isinstance(expected, str):
        with pytest.raises(TrainSetupError, match=expected):
            _check_training_set(run_config, data, info)
    else:
        assert _check_training_set(run_config, data, info) == expected
