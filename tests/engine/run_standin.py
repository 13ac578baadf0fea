"""Trains the stand-in detector; run as a subprocess by the resume test: ``run_standin.py OUT_DIR RESUME SLEEP_S``."""

import sys

import torch

from gfocal.engine import TrainConfig, TrainData, train
from standin import RandomDetections, TinyDetector, collate, records_for


def config(out_dir: str, resume: str = "") -> TrainConfig:
    return TrainConfig(model="standin", epochs=3, batch_size=2, warmup_iters=3, step_epochs=(2,), ema=True,
                       checkpoint_interval=3, log_interval=1, workers=0, seed=0, out_dir=out_dir, resume=resume)


def data() -> TrainData:
    val = RandomDetections(4, seed=1)
    return TrainData(RandomDetections(16), collate, val, records_for(val))


if __name__ == "__main__":
    out_dir, resume, sleep_s = sys.argv[1], sys.argv[2], float(sys.argv[3])
    torch.manual_seed(0)
    train(config(out_dir, resume), model=TinyDetector(sleep_s=sleep_s), data=data())
