"""A tiny training run of the stand-in detector: 16 random images, batches of 4 (4 steps an epoch), 2 epochs,
a validation set of 4 images evaluated after each epoch. Its AP is 0 at every evaluation: the stand-in
predicts one 8 x 8 box at the corner, and every ground-truth box is 16 x 16, so no IoU reaches 0.5."""

from gfocal.engine import TrainConfig, TrainData
from support.standin import RandomDetections, collate, records_for


def tiny_config(tmp_path, **changes) -> TrainConfig:
    values = dict(
        model="standin",
        epochs=2,
        batch_size=4,
        optimizer="sgd",
        lr=0.01,
        schedule="step",
        warmup_iters=2,
        step_epochs=(1,),
        ema=False,
        workers=0,
        log_interval=1,
        out_dir=str(tmp_path / "run"),
    )
    return TrainConfig(**{**values, **changes})


def tiny_data(n: int = 16) -> TrainData:
    val = RandomDetections(4, seed=1)
    return TrainData(RandomDetections(n), collate, val, records_for(val))
