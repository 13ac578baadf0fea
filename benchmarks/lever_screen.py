"""Screen the levers that do not change training: weight averages and inference settings, from ONE run each.

    python benchmarks/lever_screen.py --train trees-val/train.json --val trees-val/val.json --epochs 300 \\
        --seed 0 --out runs/screen/s0 [--set key=value ...] [--ema 0.99:0.1 ...] [--nms 0.5 0.6 0.7] \\
        [--infer box_voting=score,box_voting_sigma=0.05 ...] [--scored-again] [--json docs/results/lever_screen.json]

An exponential moving average of the weights (EMA) changes what is evaluated and exported, never a
training step; so do inference settings (NMS IoU). One fixed-step training run without the trainer's
EMA (``ema=false``; every other ``TrainConfig`` field from ``--set`` over the default recipe) feeds,
step by step, several :class:`gfocal.engine.ema.ModelEMA` copies: ``--ema DECAY:RAMP_SHARE`` is a
decay and a warm-up of ``RAMP_SHARE`` x the run's steps (the trainer's own EMA, 0.9998 with a ramp
of 2000 updates, is ``0.9998:2000u``: a ramp in updates instead of a share). The raw weights and each
average are saved and scored on ``--val`` (the split for choices) with each ``--nms`` IoU threshold, plain and
with each ``--infer`` set of model inference options (e.g. box voting). ``--scored-again`` scores the weights
a finished run left, with new inference settings, without training again.
Weights are the final ones; nothing is picked during the run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml
from common import add_json_argument, report

from gfocal.data import load_dataset
from gfocal.engine import load_config, train
from gfocal.engine.ema import ModelEMA
from gfocal.engine.evaluate import evaluate_weights
from gfocal.models.weights import save_weights

METRICS = ("AP", "AP50", "AP75", "APs", "APm")


def parse_ema(text: str, steps: int) -> tuple[str, float, float]:
    """``DECAY:RAMP`` → (label, decay, ramp in updates); RAMP is a share of ``steps``, or updates with a ``u``."""
    decay, _, ramp = text.partition(":")
    updates = float(ramp[:-1]) if ramp.endswith("u") else float(ramp) * steps
    if not (0 <= float(decay) < 1 and updates > 0):
        raise argparse.ArgumentTypeError(f"--ema {text}: DECAY in [0, 1) and a positive RAMP expected")
    return f"ema{text}", float(decay), updates


def parse_inference(text: str) -> dict[str, Any]:
    """``box_voting=score,box_voting_sigma=0.05`` → {"box_voting": "score", "box_voting_sigma": 0.05}."""
    options = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"--infer {text}: KEY=VALUE pairs separated by commas expected")
        options[key.strip()] = yaml.safe_load(value)
    return options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", required=True, help="training dataset (COCO json, VOC folder or YOLO yaml)")
    parser.add_argument("--val", required=True, help="the split the choices are made on")
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="run folder")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="TrainConfig overrides")
    parser.add_argument("--ema", action="append", default=[], metavar="DECAY:RAMP", help="an average to keep")
    parser.add_argument("--nms", type=float, nargs="+", default=[0.6], help="NMS IoU thresholds to score")
    parser.add_argument(
        "--infer",
        action="append",
        type=parse_inference,
        default=[],
        metavar="KEY=VALUE[,KEY=VALUE]",
        help="model inference options to score (each also at every --nms); the plain settings are always scored",
    )
    parser.add_argument(
        "--scored-again", action="store_true", help="score the weights a finished run of these arguments left in --out"
    )
    add_json_argument(parser, "lever_screen")
    args = parser.parse_args()

    config = load_config(
        overrides=args.set,
        fields={
            "train_data": args.train,
            "epochs": args.epochs,
            "seed": args.seed,
            "ema": False,
            "eval_interval": 0,
            "eval_share": 0.0,
            "out_dir": str(args.out),
        },
    )
    images = len(load_dataset(args.train).images)
    steps = args.epochs * max(images // config.batch_size, 1)  # the trainer's steps (a smaller set: one batch)
    averages: list[tuple[str, ModelEMA]] = []

    def keep_averages(iteration: int, network: Any) -> None:
        # The hook first sees the weights after step 1, so the averages start there; the trainer's starts from the
        # initial weights, which its first update keeps 0.05% of (decay 0.9998 x (1 - e^(-1/2000))): no difference.
        if not averages:
            for text in args.ema:
                label, decay, ramp = parse_ema(text, steps)
                averages.append((label, ModelEMA(network, decay, ramp)))
        for _, average in averages:
            average.update(network)

    if args.scored_again:
        iterations = json.loads((args.out / "metrics.jsonl").read_text().splitlines()[-1])["iteration"]
        weights = {"raw": args.out / "model.safetensors"}
        weights |= {label: args.out / f"{label}.safetensors" for label, _, _ in (parse_ema(e, steps) for e in args.ema)}
    else:
        print(f"training {args.out} with {args.set}", file=sys.stderr)
        result = train(config, on_step=keep_averages)
        iterations = result.iterations
        weights = {"raw": result.weights}
        for label, average in averages:
            weights[label] = save_weights(average.module, args.out / f"{label}.safetensors")
    rows = []
    for label, path in weights.items():
        for inference in [{}, *args.infer]:
            for nms in args.nms:
                metrics = evaluate_weights(path, args.val, overrides={**inference, "nms_iou_threshold": nms})
                row = {"weights": label, "nms": nms, **({"infer": inference} if inference else {})}
                rows.append(row | {m: metrics[m] for m in METRICS})
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    report(
        {
            "train": args.train,
            "val": args.val,
            "epochs": args.epochs,
            "iterations": iterations,
            "seed": args.seed,
            "set": args.set,
            "rows": rows,
        },
        args.json,
    )


if __name__ == "__main__":
    main()
