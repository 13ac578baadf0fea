"""Trains the stand-in detector; run as a subprocess by the resume test: ``standin_run.py OUT_DIR RESUME SLEEP_S PRECISION``."""

import sys

import torch

from gfocal.engine import TrainConfig, TrainData, train
from support.standin import RandomDetections, TinyDetector, collate, records_for


def config(out_dir: str, resume: str = "", precision: str = "fp32") -> TrainConfig:
    return TrainConfig(
        model="standin",
        epochs=3,
        batch_size=2,
        warmup_iters=3,
        step_epochs=(2,),
        ema=True,
        checkpoint_interval=3,
        log_interval=1,
        workers=0,
        seed=0,
        precision=precision,
        out_dir=out_dir,
        resume=resume,
    )


def data() -> TrainData:
    val = RandomDetections(4, seed=1)
    return TrainData(RandomDetections(16), collate, val, records_for(val))


if __name__ == "__main__":
    out_dir, resume, sleep_s, precision = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
    torch.manual_seed(0)
    train(config(out_dir, resume, precision), model=TinyDetector(sleep_s=sleep_s), data=data())


def ddp_worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    """One process of a gloo job on 127.0.0.1 (the target of ``torch.multiprocessing.spawn``)."""
    import os

    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    torch.manual_seed(0)
    train(config(out_dir).replace(device="cpu", ema=False), model=TinyDetector(), data=data())
