"""A time budget is a target: the run fills it, evaluates by time, and ends within it; multi-scale changes the input size."""

import json
import logging
import time
from types import SimpleNamespace

import pytest
import torch

from gfocal.engine import TrainConfig, TrainData, load_checkpoint, train
from gfocal.engine.budget import estimated_eval_s
from support.standin import RandomDetections, TinyDetector, collate, records_for


def budget_config(tmp_path, **changes):
    values = dict(
        model="standin",
        epochs=None,
        time_budget_minutes=4.0 / 60,
        batch_size=4,
        warmup_iters=5,
        workers=0,
        log_interval=1,
        precision="fp32",
        out_dir=str(tmp_path / "run"),
    )
    return TrainConfig(**{**values, **changes})


def test_a_budget_without_epochs_is_filled_and_the_schedule_planned_for_it(tmp_path, caplog):
    torch.manual_seed(0)
    val = RandomDetections(4, seed=1)
    started = time.perf_counter()
    with caplog.at_level(logging.INFO, logger="gfocal"):
        result = train(
            budget_config(tmp_path),
            model=TinyDetector(sleep_s=0.02),
            data=TrainData(RandomDetections(16), collate, val, records_for(val)),
        )
    elapsed = time.perf_counter() - started
    state = load_checkpoint(result.out_dir / "last.pt")
    # Steps of 20 ms and more for about 4 s: far more than the few measured before planning, within the budget.
    assert result.iterations > 30 and state["elapsed_s"] < 4.0 + 0.3 and elapsed < 4.0 + 3.0
    assert state["elapsed_s"] > 4.0 * 0.7, "the budget was not filled"
    assert state["schedule"]["total_iters"] == result.iterations and not result.stopped_by_time_budget
    rows = [json.loads(line) for line in (result.out_dir / "metrics.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in rows if r["kind"] == "train"]
    # The cosine decay was planned for the budget: it ends near its floor, not cut off at full rate.
    assert lrs[-1] < 0.05 * max(lrs)
    assert any("plan:" in r.message and "iterations" in r.message for r in caplog.records)


def test_evaluation_in_a_budgeted_run_costs_a_bounded_share(tmp_path):
    torch.manual_seed(0)
    val = RandomDetections(64, seed=1)  # evaluations far slower than an epoch of training
    result = train(
        budget_config(tmp_path, batch_size=2, eval_share=0.1),
        model=TinyDetector(sleep_s=0.01),
        data=TrainData(RandomDetections(4), collate, val, records_for(val)),
    )
    rows = [json.loads(line) for line in (result.out_dir / "metrics.jsonl").read_text().splitlines()]
    evaluations = [r for r in rows if r["kind"] == "eval"]
    epochs = result.iterations // 2
    assert 1 <= len(evaluations) < epochs / 4  # not every epoch
    before_last = sum(r["eval_s"] for r in evaluations[:-1])
    assert before_last <= 0.1 * 4.0 + evaluations[0]["eval_s"]  # the share, give or take one evaluation
    assert evaluations[-1]["iteration"] == result.iterations  # the final weights are always evaluated


def test_with_epochs_the_budget_only_caps(tmp_path):
    torch.manual_seed(0)
    result = train(
        budget_config(tmp_path, epochs=2, step_epochs=(1,), time_budget_minutes=1.0),
        model=TinyDetector(),
        data=TrainData(RandomDetections(16), collate),
    )
    assert result.iterations == 8 and not result.stopped_by_time_budget


@pytest.mark.slow
def test_multiscale_changes_the_network_input_size(tmp_path, splits):
    from gfocal.models import gfl_small

    train_json, _ = splits
    model = gfl_small(
        num_classes=4, min_size=96, max_size=96, class_names=("rectangle", "ellipse", "triangle", "cross")
    )
    sizes = set()
    model.backbone.register_forward_pre_hook(lambda module, args: sizes.add(tuple(args[0].shape[-2:])))
    train(
        TrainConfig(
            model="gfl_small",
            train_data=str(train_json),
            multiscale=(64, 160),
            epochs=2,
            batch_size=2,
            workers=0,
            mosaic=0.0,
            out_dir=str(tmp_path / "run"),
            precision="fp32",
        ),
        model=model,
    )
    assert len(sizes) > 1 and all(max(size) in (64, 96, 128, 160) for size in sizes), sizes


@pytest.fixture
def splits(tmp_path):
    from gfocal.data.synthetic import make_synthetic_splits

    return make_synthetic_splits(
        tmp_path / "data",
        "demo",
        seed=0,
        num_train=8,
        num_val=2,
        image_size=(96, 96),
        size_range=(12, 48),
        objects_per_image=(1, 3),
    )


def test_the_evaluation_estimate_counts_tiles_not_images():
    images = [SimpleNamespace(height=2400, width=2400), SimpleNamespace(height=300, width=300)]
    val = SimpleNamespace(val=[None, None], val_records=SimpleNamespace(images=images))

    def estimate(tile):
        config = SimpleNamespace(tile=tile, tile_overlap=0.2)
        run = SimpleNamespace(config=config, data=val, last_eval_s=None, sampler=SimpleNamespace(batch_size=8))
        return estimated_eval_s(run, seconds_per_step=1.6) - 0.25  # less the fixed cost

    # 7 x 7 tiles of 416 px at overlap 0.2 for the large image, one for the small one: 50 inputs, not 2.
    assert estimate(416) == pytest.approx(estimate(None) * 50 / 2)
