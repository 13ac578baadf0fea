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
        "medium/large and per-class AP, printed and saved as JSON with the suggested score threshold (best F1 over "
        "all classes at IoU 0.5, for 'gfocal predict --score-threshold best'). With --report, also a report "
        "folder: precision-recall and F1 curves, AP per IoU, a confusion matrix and the worst images (index.html).",
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
    parser.add_argument(
        "--report",
        default=None,
        metavar="DIR",
        help="also write an evaluation report into DIR (new or empty unless --overwrite): index.html with per-class "
        "precision-recall curves (IoU 0.5, 0.75), F1 against the score threshold, AP per IoU, a confusion matrix with "
        "background and the images with most errors; the PNGs; report.json with the numbers and the best threshold",
    )
    parser.add_argument(
        "--worst-images", type=positive_int, default=12, metavar="N", help="images drawn in the report (default 12)"
    )
    parser.add_argument("--overwrite", action="store_true", help="write the --report into an existing non-empty folder")
    add_tiling_options(parser)
    add_tta_options(parser)
    add_image_size_option(parser)
    add_precision_option(parser)
    add_compile_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from gfocal.analysis.eval_report import eval_report, suggested_score_threshold
    from gfocal.engine import format_results
    from gfocal.engine.evaluate import run_evaluation, save_results
    from gfocal.fileio import prepare_output_dir
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
        report_dir = prepare_output_dir(args.report, args.overwrite) if args.report else None  # refuse before the run
        evaluation = run_evaluation(
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
    records, coco_eval = evaluation.records, evaluation.coco_eval
    class_names = list(records.class_names)
    # The threshold is stored always (cheap); the rest of the report (every image's errors) only when asked for.
    report = eval_report(coco_eval, class_names, evaluation.results, args.worst_images) if report_dir else None
    threshold = report["best_score_threshold"] if report else suggested_score_threshold(coco_eval, class_names)
    results = {**evaluation.results, "best_score_threshold": threshold}
    source = {"weights": str(args.weights), "data": str(args.data)}
    out = Path(args.out) if args.out else Path(args.weights).parent / f"eval_{Path(args.data).stem}.json"
    save_results(out, {**source, **results})
    print(format_results(results))
    best = threshold["overall"]
    if best is not None:
        print(
            f"suggested score threshold {best['threshold']:.3f} (best F1 {best['f1']:.3f} at IoU 0.5: precision "
            f"{best['precision']:.3f}, recall {best['recall']:.3f})"
        )
    print(f"saved: {out}")
    if report is not None:
        from gfocal.analysis.eval_report_html import write_eval_report

        print(f"report: {write_eval_report(report_dir, report, records, coco_eval, source)}")
    return 0
