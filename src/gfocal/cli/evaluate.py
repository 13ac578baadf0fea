"""``gfocal eval``: COCO metrics of a trained model on a labelled dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from gfocal.cli.common import (
    CommandError,
    add_compile_option,
    add_image_size_option,
    add_precision_option,
    positive_int,
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
    parser.add_argument("--batch-size", type=positive_int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    add_image_size_option(parser)
    add_precision_option(parser)
    add_compile_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import functools

    import torch

    from gfocal.data import DetectionDataset, collate_detection, detect_format, load_dataset
    from gfocal.engine import evaluate_model, format_results
    from gfocal.engine.evaluate import save_results
    from gfocal.models import load_model
    from gfocal.models.precision import autocast, prepare_for_inference, resolve_precision

    with user_errors():
        model = load_model(args.weights, image_size=args.image_size)
        split = args.split or ("val" if detect_format(args.data) == "yolo" else None)
        records = load_dataset(args.data, images_dir=args.images, split=split)
        records.require_boxes("evaluate against")  # without ground truth every AP is undefined (-1)
    named = model.config.class_names
    if (list(named) if named else model.config.num_classes) != (list(records.class_names) if named else records.num_classes):
        # Label k of the model would be scored as class k of the data: a wrong AP, not an error.
        raise CommandError(f"{args.data}: classes {records.class_names} do not match the model's "
                           f"{list(model.class_names)} ({args.weights})")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    prepare_for_inference(model.to(device), compile=bool(args.compile))
    precision = resolve_precision(args.precision, device)
    dataset = DetectionDataset(records)  # decoded files: the model resizes them as gfocal predict does
    with torch.inference_mode():
        results = evaluate_model(
            model, dataset, records, collate_detection, device, args.batch_size, args.workers,
            autocast=functools.partial(autocast, precision),
        )
    out = Path(args.out) if args.out else Path(args.weights).parent / f"eval_{Path(args.data).stem}.json"
    save_results(out, {"weights": str(args.weights), "data": str(args.data), **results})
    print(format_results(results))
    print(f"saved: {out}")
    return 0
