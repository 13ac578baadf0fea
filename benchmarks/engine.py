"""Per-step cost of the training engine against a bare PyTorch loop on the same model and batches.

    python benchmarks/engine.py [--image-size 128] [--batch-size 4] [--steps 12]

Prints JSON. Both loops train gfl_small on the same preloaded synthetic images
(no decoding), so the difference is the engine's own work per step: scheduled
learning rate, seeded per-sample augmentation wrapper, the finite-loss check
(one host sync), gradient clipping, logging and the progress bar.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from common import add_json_argument, report

from gfocal.data import DetectionDataset, collate_detection, load_dataset
from gfocal.data.synthetic import make_synthetic_splits
from gfocal.engine import TrainConfig, TrainData, train
from gfocal.models import gfl_small


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=12)
    add_json_argument(parser, "engine")
    args = parser.parse_args()
    size, batch, steps = args.image_size, args.batch_size, args.steps
    with tempfile.TemporaryDirectory() as tmp:
        train_json, _ = make_synthetic_splits(
            tmp, "demo", seed=0, num_train=batch * steps, num_val=1, image_size=(size, size), size_range=(12, size // 2)
        )
        samples = list(DetectionDataset(load_dataset(train_json)))
        overrides = {"min_size": size, "max_size": size}

        torch.manual_seed(0)
        model = gfl_small(4, **overrides)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.0025, momentum=0.9, weight_decay=1e-4)
        bare = []
        for i in range(steps):
            start = time.perf_counter()
            images, targets = collate_detection(samples[i * batch : (i + 1) * batch])
            loss = sum(model(images, targets).values())
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 35.0)
            optimizer.step()
            bare.append(time.perf_counter() - start)

        torch.manual_seed(0)
        config = TrainConfig(
            model="gfl_small",
            model_overrides=overrides,
            epochs=1,
            batch_size=batch,
            step_epochs=(),
            warmup_iters=2,
            workers=0,
            log_interval=1,
            out_dir=str(Path(tmp) / "run"),
        )
        train(config, model=gfl_small(4, **overrides), data=TrainData(samples, collate_detection))
        rows = [json.loads(line) for line in (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines()]
        engine = [row["iter_time"] for row in rows if row["kind"] == "train"]

    skip = 2  # warm-up steps
    bare_ms, engine_ms = (statistics.median(t[skip:]) * 1e3 for t in (bare, engine))
    report(
        {
            "image_size": size,
            "batch_size": batch,
            "steps": steps,
            "bare_loop_step_ms": round(bare_ms, 1),
            "engine_step_ms": round(engine_ms, 1),
            "engine_overhead": round(engine_ms / bare_ms - 1, 3),
        },
        args.json,
    )


if __name__ == "__main__":
    main()
