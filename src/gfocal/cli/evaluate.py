"""``gfocal eval``: COCO metrics of a trained model on a labelled dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from gfocal.cli.common import (
    add_compile_option,
    add_image_size_option,
    add_precision_option,
    add_tiling_options,
    add_tta_options,
    check_fusion,
    check_merge,
    positive_int,
    tiling_config,
    tta_config,
    user_errors,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="COCO AP of a trained model on a labelled dataset",
        description="Evaluate a weights file on a COCO json, VOC folder or YOLO yaml: AP, AP50, AP75, AP small/"
        "medium/large and per-class AP, printed and saved as JSON.",
    )
    parser.add_argument("--weights", required=True, help="a .safetensors weights file written by 'gfocal train'")
    parser.add_argument("--data", required=True, help="COCO json, VOC folder or YOLO yaml")
    parser.add_argument("--images", default=None, help="images folder (COCO/VOC)")
    parser.add_argument("--split", default=None, help="YOLO yaml / VOC split (default: val for YOLO)")
    parser.add_argument("--out", default=None, help="results JSON (default: next to the weights, eval_<data>.json)")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="images (with --tile: tiles) per pass")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--max-detections",
        type=positive_int,
        default=100,
        metavar="N",
        help="detections per image that count (COCO's maxDets, default 100); raise it for scenes with more objects",
    )
    add_tiling_options(parser)
    add_tta_options(parser)
    add_image_size_option(parser)
    add_precision_option(parser)
    add_compile_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from gfocal.engine import format_results
    from gfocal.engine.evaluate import evaluate_weights, save_results
    from gfocal.models.components import build_box_coding
    from gfocal.models.weights import read_config

    tiling, tta = tiling_config(args), tta_config(args)
    fusion = args.fusion or "distribution"
    with user_errors():
        if tiling is not None or tta is not None:
            has_distributions = build_box_coding(read_config(args.weights)).has_distributions
            check_merge(tiling, has_distributions, args.weights)
            if tta is not None:
                check_fusion(fusion, has_distributions, args.weights)
        results = evaluate_weights(
            args.weights,
            args.data,
            images=args.images,
            split=args.split,
            batch_size=args.batch_size,
            workers=args.workers,
            image_size=args.image_size,
            precision=args.precision,
            compile=bool(args.compile),
            device=args.device,
            tiling=tiling,
            max_detections=args.max_detections,
            tta=tta,
            fusion=fusion,
            progress=not args.quiet,
        )
    out = Path(args.out) if args.out else Path(args.weights).parent / f"eval_{Path(args.data).stem}.json"
    save_results(out, {"weights": str(args.weights), "data": str(args.data), **results})
    print(format_results(results))
    print(f"saved: {out}")
    return 0
