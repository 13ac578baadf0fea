"""The distribution tools of issue #20 measured on synthetic data: active learning, fusion, calibration, range.

    python benchmarks/uncertainty.py [--seeds 0 1 2] [--labelled 60] [--pool 240] [--budget 60]
        [--iterations 300] [--json docs/results/uncertainty.json]

Data: a synthetic set (the ambiguity benchmark's: 64 px, two classes, some blurred or occluded
edges), split into a labelled start, an unlabelled pool, a validation split (the temperature is
fitted there) and a test split (every number below is measured there).

Per seed: a model trains on the labelled start; ``select`` picks ``budget`` pool images (one
forward pass, no diversity), a random draw picks as many; a model trains from scratch on the
start plus each pick for the same number of iterations (same model and image size, so the same
time per iteration); test AP of both. Then, on the seed-0 models: fusion of 6 TTA views (flip x
scales 0.8/1.0/1.25) and of the 2-model ensemble by NMS, WBF and distribution weights (AP and
seconds), the calibration before and after the fitted temperature, and the range diagnostics.
"""

from __future__ import annotations

import os

# Before torch loads: spinning OpenMP threads slow everything down on a shared, busy CPU.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ambiguity_auroc import brief_config
from common import add_json_argument, report

from gfocal.analysis.calibration_report import calibration_statistics, collect
from gfocal.analysis.fusion import fused_dataset_detections
from gfocal.analysis.range import edge_range_statistics
from gfocal.analysis.selection import choose, score_images
from gfocal.data import DatasetRecords, load_dataset, write_coco
from gfocal.data.image_io import decode_image
from gfocal.data.synthetic import make_synthetic_splits
from gfocal.engine import train
from gfocal.engine.evaluate import evaluate_detections
from gfocal.models import GFLDetector, load_model
from gfocal.models.fusion import TestTimeAugmentation

SIZE = 64
FROZEN = {"trainable_backbone_layers": 0}  # as the ambiguity test: FPN and head train, the body stays random


def subset(records: DatasetRecords, images: list[Any]) -> DatasetRecords:
    return dataclasses.replace(records, images=list(images))


def train_on(records: DatasetRecords, folder: Path, iterations: int, seed: int) -> GFLDetector:
    """The engine's ``"ambiguity"`` recipe (FPN and head train, the body stays random) on ``records``."""
    train_json = write_coco(records, folder / "train.json")
    config = brief_config(train_json, len(records.images), iterations, folder / "run", model_overrides=FROZEN,
                          seed=seed, precision="fp32", workers=0)  # fmt: skip
    return load_model(train(config).weights).eval()


def test_ap(model: GFLDetector, records: DatasetRecords) -> float:
    with torch.no_grad():
        detections = {i: model.eval()([decode_image(r.path)])[0] for i, r in enumerate(records.images)}
    return evaluate_detections(records, detections)["AP"]


def active_learning_round(
    splits: dict[str, DatasetRecords], seed: int, budget: int, iterations: int, folder: Path
) -> tuple[dict[str, Any], GFLDetector, GFLDetector]:
    start = splits["labelled"]
    initial = train_on(start, folder / f"initial_{seed}", iterations, seed)
    pool = splits["pool"].images
    tick = time.perf_counter()
    scores = score_images(initial, [r.path for r in pool], batch_size=8, progress=False)
    select_seconds = time.perf_counter() - tick
    by_path = {r.path: r for r in pool}
    chosen = [by_path[scores[i].path] for i in choose(scores, budget)]
    drawn = [pool[i] for i in np.random.default_rng(seed).choice(len(pool), budget, replace=False)]
    models, row = {}, {"seed": seed, "select_seconds": select_seconds, "initial_AP": test_ap(initial, splits["test"])}
    for name, picked in (("selected", chosen), ("random", drawn)):
        models[name] = train_on(subset(start, start.images + picked), folder / f"{name}_{seed}", iterations, seed)
        row[f"{name}_AP"] = test_ap(models[name], splits["test"])
        row[f"{name}_boxes"] = sum(len(r.annotations) for r in picked)
    return row, models["selected"], models["random"]


def fusion_table(models: list[GFLDetector], test: DatasetRecords, tta: TestTimeAugmentation) -> dict[str, Any]:
    runs = fused_dataset_detections(models, test, tta, batch_size=8, progress=False)
    return {
        method: {"AP": (r := evaluate_detections(test, detections))["AP"], "AP50": r["AP50"], "AP75": r["AP75"],
                 "seconds": seconds}
        for method, (detections, seconds) in runs.items()
    }  # fmt: skip


def calibration(model: GFLDetector, splits: dict[str, DatasetRecords]) -> dict[str, Any]:
    fitted = calibration_statistics(collect(model, splits["val"], progress=False))["fitted_std_scale"]
    test = collect(model, splits["test"], progress=False)
    scaled = dataclasses.replace(test, std=test.std * fitted)
    keep = ("rmv", "rmse", "ratio", "ence", "spearman")
    summary = {}
    for name, data in (("as_trained", test), ("with_temperature", scaled)):
        stats = calibration_statistics(data)
        summary[name] = {
            "edges": {k: stats["edges"][k] for k in keep},
            "boxes": {k: stats["boxes"][k] for k in keep},
            "score": {k: stats["score"][k] for k in ("ece", "spearman", "mean_score", "mean_iou")},
            "matched_boxes": stats["matched_boxes"],
        }
    return {"fitted_std_scale_on_val": fitted, **summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--labelled", type=int, default=60)
    parser.add_argument("--pool", type=int, default=240)
    parser.add_argument("--val", type=int, default=60)
    parser.add_argument("--test", type=int, default=100)
    parser.add_argument("--budget", type=int, default=60)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    add_json_argument(parser, "uncertainty")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        train, held = make_synthetic_splits(
            Path(folder), "ambiguity", seed=0, num_train=args.labelled + args.pool, num_val=args.val + args.test,
            image_size=SIZE,
        )  # fmt: skip
        train, held = load_dataset(train, warn=False), load_dataset(held, warn=False)
        splits = {
            "labelled": subset(train, train.images[: args.labelled]),
            "pool": subset(train, train.images[args.labelled :]),
            "val": subset(held, held.images[: args.val]),
            "test": subset(held, held.images[args.val :]),
        }
        rounds, kept = [], None
        for seed in args.seeds:
            row, selected, drawn = active_learning_round(splits, seed, args.budget, args.iterations, Path(folder))
            rounds.append(row)
            kept = kept or (selected, drawn)
        selected, drawn = kept
        results = {
            "settings": {k: v for k, v in vars(args).items() if k != "out"}
            | {"image_size": SIZE, "model": "gfl_small"},
            "active_learning": {
                "rounds": rounds,
                "selected_AP": _mean_sd([r["selected_AP"] for r in rounds]),
                "random_AP": _mean_sd([r["random_AP"] for r in rounds]),
            },
            "fusion": {
                "tta_flip_3_scales": fusion_table(
                    [selected], splits["test"], TestTimeAugmentation((0.8, 1.0, 1.25), True)
                ),
                "ensemble_2_models": fusion_table([selected, drawn], splits["test"], TestTimeAugmentation()),
            },
            "calibration": calibration(selected, splits),
            "range": {
                k: v for k, v in edge_range_statistics(selected.config, splits["labelled"]).items() if k != "levels"
            },
            "torch": torch.__version__,
            "seconds": time.perf_counter() - started,
        }
    report(results, args.json)


def _mean_sd(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.mean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0}


if __name__ == "__main__":
    main()
