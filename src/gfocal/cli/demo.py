"""``gfocal demo``: the whole job on built-in synthetic data, in a few CPU minutes."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from gfocal.cli.common import add_precision_option, user_errors


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="generate synthetic data, train, evaluate and predict end to end (CPU, ~5 minutes)",
        description="Writes a synthetic dataset, trains the CPU-sized GFL model (gfl_nano) on it within a time budget, "
        "evaluates COCO AP on the validation split, and draws predictions on a few validation images.",
    )
    parser.add_argument("--out", default="gfocal-demo", help="output folder (default: ./gfocal-demo)")
    parser.add_argument("--minutes", type=float, default=3.5, help="training time budget (default: 3.5)")
    parser.add_argument("--num-train", type=int, default=300, help="synthetic training images (default: 300)")
    parser.add_argument("--num-val", type=int, default=60, help="synthetic validation images (default: 60)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--overwrite", action="store_true", help="reuse a non-empty output folder")
    add_precision_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from gfocal.data.synthetic import make_synthetic_splits
    from gfocal.engine import TrainConfig, format_results, train
    from gfocal.engine.predict import predict_files, write_predictions
    from gfocal.fileio import prepare_output_dir
    from gfocal.models import load_model

    started = time.perf_counter()
    with user_errors():
        out = prepare_output_dir(args.out, args.overwrite)
    print(f"[1/4] writing synthetic data to {out / 'data'}")
    train_json, val_json = make_synthetic_splits(out / "data", "demo", args.seed, args.num_train, args.num_val)

    # The demo recipe (chosen for CPUs without native bf16, #28), filling the budget and evaluating once, at the end.
    config = TrainConfig.from_recipe(
        "demo",
        train_data=str(train_json),
        val_data=str(val_json),
        epochs=None,  # planned to fill the time budget
        eval_share=0.0,
        seed=args.seed,
        workers=args.workers,
        device=args.device or "auto",
        precision=args.precision,
        time_budget_minutes=args.minutes,
        out_dir=str(out / "train"),
    )
    print(f"[2/4] training {config.model} for at most {args.minutes:g} minutes")
    result = train(config)

    print("[3/4] evaluation on the validation split")
    print(format_results(result.final_metrics))

    print("[4/4] drawing predictions on 8 validation images")
    model = load_model(result.weights)
    images = sorted((Path(val_json).parent / "val").glob("*.png"))[:8]
    predictions = predict_files(model, images, precision=args.precision, device=args.device, progress=False)
    write_predictions(predictions, out / "predictions", model.class_names)

    minutes = (time.perf_counter() - started) / 60
    print(
        f"\ndone in {minutes:.1f} min: AP {result.final_metrics['AP']:.3f}, AP50 {result.final_metrics['AP50']:.3f} "
        f"after {result.iterations} iterations\n"
        f"  weights:     {result.weights}\n"
        f"  metrics:     {result.out_dir / 'metrics.jsonl'} (curves: loss.png, ap.png)\n"
        f"  predictions: {out / 'predictions' / 'images'}"
    )
    return 0
