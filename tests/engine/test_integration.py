"""The engine with the real detector (gfl_small) and data pipeline, on tiny synthetic images."""

import pytest
import torch

from gfocal.data.synthetic import make_synthetic_splits
from gfocal.engine import TrainConfig, load_checkpoint, train
from gfocal.models import load_model

pytestmark = pytest.mark.slow  # trains, evaluates and exports gfl_small end to end


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    return make_synthetic_splits(
        out, "demo", seed=0, num_train=8, num_val=4, image_size=(96, 96), size_range=(12, 48), objects_per_image=(1, 3)
    )


def test_gfl_small_trains_evaluates_and_exports(tmp_path, splits):
    train_json, val_json = splits
    config = TrainConfig(
        model="gfl_small",
        model_overrides={"min_size": 96, "max_size": 96},
        train_data=str(train_json),
        val_data=str(val_json),
        epochs=2,
        batch_size=4,
        warmup_iters=2,
        step_epochs=(1,),
        workers=0,
        log_interval=1,
        ema=True,
        out_dir=str(tmp_path / "run"),
    )
    result = train(config)
    assert result.iterations == 4 and result.final_metrics is not None
    assert 0.0 <= result.final_metrics["AP"] <= 1.0
    assert [row["class"] for row in result.final_metrics["per_class"]] == ["rectangle", "ellipse", "triangle", "cross"]
    state = load_checkpoint(result.last_checkpoint)
    assert tuple(state["model_config"]["class_names"]) == ("rectangle", "ellipse", "triangle", "cross")
    model = load_model(result.weights)
    assert model.config.class_names == ("rectangle", "ellipse", "triangle", "cross")
    # model.safetensors holds the final weights (the EMA's); model_best.safetensors those of best.pt.
    for weights, checkpoint in (
        (result.weights, result.last_checkpoint),
        (result.best_weights, result.best_checkpoint),
    ):
        expected = load_checkpoint(checkpoint)["ema"]["module"]
        for name, tensor in load_model(weights).state_dict().items():
            torch.testing.assert_close(tensor, expected[name].to(tensor.dtype))
