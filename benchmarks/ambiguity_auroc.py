"""Does the ambiguity score find the objects whose edges are blurred or occluded by construction?

    python benchmarks/ambiguity_auroc.py [--iterations 1000] [--every 200] [--train 400] [--val 100] [--size 64] [--out DIR]

Writes a synthetic train/val pair where a known share of objects have blurred
or partly occluded edges (the generator's ``"ambiguity"`` preset records which),
trains with the engine's ``"ambiguity"`` recipe (a light ``gfl_small``, SGD,
flips, cosine schedule) on CPU, probes the val annotations every ``--every``
steps through the engine's ``on_step`` hook and prints JSON: the AUROC of the
box ambiguity score and of other per-box and per-edge statistics against the
recorded labels (:func:`gfocal.analysis.evaluation.auroc_table`): a JSON line to stderr at each
probe, and at the end all of them in one JSON (``common.report``, with the machine,
commit and command; ``--json``).
``tests/analysis/test_auroc_training.py`` runs a short version with a floor.
"""

from __future__ import annotations

import os

# Before torch loads: spinning OpenMP threads slow everything down on a shared, busy CPU.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from common import add_json_argument, report
from torch import nn

from gfocal.analysis.evaluation import auroc_table, probe_statistics
from gfocal.data import load_dataset
from gfocal.data.synthetic import make_synthetic_splits
from gfocal.engine import TrainConfig, train
from gfocal.models import load_model


def brief_config(train_json: Path, num_train: int, iterations: int, out: Path, **fields: Any) -> TrainConfig:
    """The ``"ambiguity"`` recipe on ``train_json`` (``num_train`` images) for the whole epochs nearest to
    ``iterations`` steps, then ``fields`` (TrainConfig fields; ``model_overrides`` merge with the recipe's)."""
    batches_per_epoch = max(1, num_train // TrainConfig.from_recipe("ambiguity").batch_size)
    epochs = max(1, round(iterations / batches_per_epoch))
    return TrainConfig.from_recipe("ambiguity", train_data=str(train_json), epochs=epochs, out_dir=str(out), **fields)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=1000, help="about this many steps (the nearest whole epochs)")
    parser.add_argument("--every", type=int, default=200, help="report the AUROCs every this many iterations")
    parser.add_argument("--train", type=int, default=400)
    parser.add_argument("--val", type=int, default=100)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trainable-layers", type=int, default=3, help="ResNet stages that train (the recipe's: 3)")
    parser.add_argument("--precision", default="fp32", choices=("auto", "fp32", "bf16"))
    parser.add_argument("--out", type=Path, default=None, help="keep the data and the run here")
    add_json_argument(parser, "ambiguity_auroc")
    args = parser.parse_args()
    root = args.out or Path(tempfile.mkdtemp(prefix="gfocal-auroc-"))
    train_json, val_json = make_synthetic_splits(
        root / "data", "ambiguity", args.seed, args.train, args.val, image_size=args.size
    )
    val = load_dataset(val_json, warn=False)
    start = time.perf_counter()
    settings = {key: value for key, value in vars(args).items() if key not in ("json", "out")}
    evaluations: list[dict[str, Any]] = []

    def evaluate(iteration: int, model: nn.Module) -> None:
        result = {"iteration": iteration, "train_seconds": round(time.perf_counter() - start, 1)}
        with torch.no_grad():
            result.update(auroc_table(probe_statistics(model, val), val))
        evaluations.append(result)
        print(json.dumps(result, default=str), file=sys.stderr, flush=True)
        # A run stopped part-way still leaves the evaluations so far.
        report({"complete": False, "settings": settings, "evaluations": evaluations}, args.json, quiet=True)

    config = brief_config(
        train_json,
        args.train,
        args.iterations,
        root / "run",
        image_size=args.size,
        model_overrides={"trainable_backbone_layers": args.trainable_layers},
        seed=args.seed,
        precision=args.precision,
    )
    result = train(config, on_step=lambda i, model: evaluate(i, model) if i % args.every == 0 else None)
    if result.iterations % args.every:  # the hook has not probed the final weights
        evaluate(result.iterations, load_model(result.weights).eval())
    summary = {"complete": True, "settings": settings, "data": str(root), "iterations": result.iterations}
    report({**summary, "evaluations": evaluations}, args.json)


if __name__ == "__main__":
    main()
