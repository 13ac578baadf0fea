"""``gfocal predict``: detections for an image, a folder or a glob, as COCO JSON and drawn images."""

from __future__ import annotations

import argparse
from pathlib import Path

from gfocal.cli.common import (
    CommandError,
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
        "predict",
        help="detect objects in images with a trained model",
        description="Run a trained model over images; write results.json (COCO results), predictions.json "
        "(COCO-style, with scores) and the images with boxes drawn.",
    )
    parser.add_argument("source", help="an image file, a folder (searched recursively) or a glob such as 'imgs/*.jpg'")
    parser.add_argument("--weights", required=True, help="a .safetensors weights file written by 'gfocal train'")
    parser.add_argument("--out", required=True, help="output folder (must be new or empty unless --overwrite)")
    parser.add_argument(
        "--score-threshold",
        type=score_threshold,
        default=None,
        metavar="SCORE|best",
        help="keep detections scoring above this (default: the one stored with the weights); 'best': the "
        "threshold of best F1 over all classes (IoU 0.5) that 'gfocal eval' found, read from --eval-json",
    )
    parser.add_argument(
        "--eval-json",
        default=None,
        metavar="PATH",
        help="with --score-threshold best: the results JSON 'gfocal eval' wrote for these weights (its --out) or its "
        "--report folder (default: the one eval_<data>.json beside the weights, where 'gfocal eval' writes it)",
    )
    parser.add_argument("--batch-size", type=positive_int, default=4, help="images (with --tile: tiles) per pass")
    parser.add_argument("--workers", type=int, default=2, help="image-decoding processes (default: 2)")
    parser.add_argument("--no-draw", action="store_true", help="do not write images with boxes drawn")
    parser.add_argument(
        "--draw-threshold",
        type=float,
        default=0.3,
        help="draw boxes scoring at least this (JSON keeps all; default 0.3)",
    )
    parser.add_argument(
        "--distributions",
        action="store_true",
        help="add to predictions.json, per box and edge (left, top, right, bottom), the learned distribution and its "
        "statistics (expected position, std in pixels, entropy, modes, second peak) and the box's ambiguity score",
    )
    parser.add_argument("--overwrite", action="store_true", help="write into an existing non-empty folder")
    add_tiling_options(parser)
    add_tta_options(parser)
    add_image_size_option(parser)
    add_precision_option(parser)
    add_compile_option(parser)
    parser.set_defaults(run=run)


def score_threshold(text: str) -> float | str:
    """argparse type: a number, or "best" (resolved by :func:`resolve_score_threshold`)."""
    if text == "best":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a number nor 'best'") from None


def resolve_score_threshold(args: argparse.Namespace) -> float | None:
    """The score threshold to predict with: the number given, or "best" read from ``--eval-json`` (by default the
    one ``eval_*.json`` beside the weights, where ``gfocal eval`` writes)."""
    import warnings

    from gfocal.analysis.eval_report import read_best_threshold

    if args.score_threshold != "best":
        if args.eval_json is not None:
            raise CommandError("--eval-json is read only with --score-threshold best")
        return args.score_threshold
    if args.eval_json is None:
        args.eval_json = _eval_json_beside(Path(args.weights))
    try:
        threshold, weights = read_best_threshold(args.eval_json)
    except ValueError as error:
        raise CommandError(str(error)) from error
    if weights is not None and Path(weights).resolve() != Path(args.weights).resolve():
        warnings.warn(f"{args.eval_json}: its threshold was found for {weights}, not {args.weights}", stacklevel=1)
    print(f"score threshold {threshold:.3f}: the best F1 'gfocal eval' found ({args.eval_json})")
    return threshold


def _eval_json_beside(weights: Path) -> Path:
    """The one ``eval_<data>.json`` that ``gfocal eval`` wrote beside ``weights``; several or none is an error,
    since which evaluation's threshold to use is the user's choice."""
    found = sorted(weights.parent.glob("eval_*.json"))
    if len(found) == 1:
        return found[0]
    where = (
        f"{len(found)} eval_*.json beside {weights} ({', '.join(p.name for p in found)})"
        if found
        else (f"no eval_*.json beside {weights}")
    )
    raise CommandError(
        f"--score-threshold best needs the threshold 'gfocal eval' chose, and there is {where}: pass --eval-json "
        "with the JSON it wrote or its --report folder, or give a number"
    )


def distribution_fields(detections: dict) -> list[dict]:
    """Per-box edge statistics, ambiguity score and the distributions themselves (4 x (reg_max + 1))."""
    from gfocal.analysis.distributions import edge_statistics, to_records

    records = to_records(edge_statistics(detections))
    for record, probs in zip(records, detections["box_distributions"].tolist()):
        record["distributions"] = [[round(p, 5) for p in edge] for edge in probs]
    return records


def run(args: argparse.Namespace) -> int:
    from gfocal.engine.predict import find_images, predict_files, write_predictions
    from gfocal.fileio import prepare_output_dir
    from gfocal.models import load_model

    tiling, tta = tiling_config(args), tta_config(args)
    fusion = args.fusion or "distribution"
    if tta is not None and args.distributions:
        raise CommandError(
            "--distributions writes each box's own edge distributions; a box fused from --tta views has none "
            "(drop one of the two)"
        )
    with user_errors():
        threshold = resolve_score_threshold(args)
        paths = find_images(args.source)
        overrides = {} if threshold is None else {"score_threshold": threshold}
        model = load_model(args.weights, image_size=args.image_size, **overrides)
        check_merge(tiling, model.head.box_coding.has_distributions, args.weights)
        if tta is not None:
            check_fusion(fusion, model.head.box_coding.has_distributions, args.weights)
        out = prepare_output_dir(args.out, args.overwrite)
    predictions = predict_files(
        model,
        paths,
        args.batch_size,
        args.workers,
        args.precision,
        args.device,
        return_distributions=args.distributions,
        compile=bool(args.compile),
        tiling=tiling,
        tta=tta,
        fusion=fusion,
    )
    counts = write_predictions(
        predictions,
        out,
        model.class_names,
        draw=not args.no_draw,
        draw_threshold=args.draw_threshold,
        box_fields=distribution_fields if args.distributions else None,
    )
    skipped = len(paths) - counts["images"]
    note = f" ({skipped} unreadable images skipped; see the warnings)" if skipped else ""
    print(f"{counts['detections']} detections in {counts['images']} images{note} -> {out}")
    return 0
