"""``gfocal analyze``: ambiguity mining (``ambiguity``) and quality-label statistics (``labels``).

Parsing and printing only; the work is in :mod:`gfocal.analysis.pipeline`. The global ``-q``
hides the progress bars.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path

from gfocal.cli.common import CommandError, user_errors

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``analyze`` with its ``ambiguity`` and ``labels`` subcommands."""
    parser = subparsers.add_parser("analyze", help="mine ambiguous annotations; quality-label statistics")
    commands = parser.add_subparsers(dest="analysis", metavar="ANALYSIS", required=True)

    ambiguity = commands.add_parser(
        "ambiguity",
        help="rank annotations by the ambiguity of the learned edge distributions (CSV, JSON, HTML report)",
        description="Run a trained GFL model over a labelled dataset (COCO json, VOC folder or YOLO yaml/folder) "
        "and rank every annotation by how ambiguous its learned edge distributions are, and by how much the "
        "annotated edges disagree with them. Writes annotations.csv/json, images.csv, figures/ and report.html.",
    )
    _common(ambiguity)
    ambiguity.add_argument("--weights", type=Path, required=True, help="gfocal weights file (.safetensors)")
    ambiguity.add_argument("--top-k", type=int, default=24, help="annotations drawn in the report (default 24)")
    ambiguity.add_argument(
        "--iou", type=float, default=0.5, help="IoU to match a detection to an annotation (default 0.5)"
    )
    ambiguity.set_defaults(run=_run_ambiguity)

    labels = commands.add_parser(
        "labels",
        help="IoU vs centerness quality labels of ATSS positives per FPN level (JSON, PNG)",
        description="Histograms per FPN level of the IoU and centerness labels of the positives that ATSS assigns "
        "on your data, and the fraction of tiny (< 0.1) labels. Uses the model's predicted boxes for IoU "
        "(an untrained gfl_small when --weights is not given).",
    )
    _common(labels)
    labels.add_argument("--weights", type=Path, default=None, help="gfocal weights file; default: an untrained model")
    labels.add_argument("--image-size", type=int, default=None, help="input size of the untrained model (default 320)")
    labels.set_defaults(run=_run_labels)

    calibration = commands.add_parser(
        "calibration",
        help="predicted edge std against actual edge error, score against IoU (JSON, PNG, HTML)",
        description="Match a trained model's detections to the annotations and measure whether the spread of "
        "each edge's learned distribution (std, pixels) matches the actual edge error: reliability diagram, "
        "ENCE, Spearman rank correlation; and whether the joint score matches the IoU (ECE). --save-calibrated "
        "fits a temperature on this (validation) set and writes a copy of the weights that applies it to every "
        "reported std.",
    )
    _common(calibration)
    calibration.add_argument("--weights", type=Path, required=True, help="gfocal weights file (.safetensors)")
    calibration.add_argument("--iou", type=float, default=0.5, help="IoU to match a detection (default 0.5)")
    calibration.add_argument("--bins", type=int, default=10, help="bins of the reliability diagrams (default 10)")
    calibration.add_argument(
        "--save-calibrated", type=Path, default=None, help="write the weights with the fitted std_scale here"
    )
    calibration.set_defaults(run=_run_calibration)

    fusion = commands.add_parser(
        "fusion",
        help="AP and time of TTA / ensemble fusion: distribution-weighted vs WBF vs NMS vs the single model",
        description="Run one or more models (an ensemble) over a labelled set, each on several views (--scales, "
        "--flip), merge the pooled detections by plain NMS, weighted box fusion, and distribution-weighted fusion "
        "(each edge weighted by score / std^2 of its learned distribution), and report COCO AP and seconds for "
        "each, and for the first model alone.",
    )
    fusion.add_argument("--weights", type=Path, nargs="+", required=True, help="one weights file, or several")
    _dataset_options(fusion)
    fusion.add_argument("--scales", type=float, nargs="+", default=[1.0], help="input-size factors (default 1.0)")
    fusion.add_argument("--flip", action="store_true", help="add horizontally flipped views")
    fusion.add_argument("--iou", type=float, default=0.55, help="IoU to join a cluster (default 0.55)")
    fusion.add_argument("--json", type=Path, default=None, help="also write the table here")
    _run_options(fusion)
    fusion.set_defaults(run=_run_fusion)

    ranges = commands.add_parser(
        "range",
        help="share of ATSS positives' edges beyond reg_max x stride, per level, and a suggested reg_max",
        description="Run the ATSS assigner on the dataset's boxes at the model's input size and strides (no "
        "network) and report the share of positive edge distances that training clamps to the last bin "
        "(beyond reg_max - 0.1 strides), per FPN level, and the least reg_max that holds --coverage of them.",
    )
    _dataset_options(ranges)
    model = ranges.add_mutually_exclusive_group()
    model.add_argument("--weights", type=Path, default=None, help="take the model's settings from a weights file")
    model.add_argument("--model", default="gfl_nano", help="a named model (default gfl_nano, the CPU default)")
    ranges.add_argument("--image-size", type=int, default=None, help="longer side of the network input")
    ranges.add_argument("--reg-max", type=int, default=None, help="the reg_max to check (default: the model's)")
    ranges.add_argument("--coverage", type=float, default=0.99, help="share of edges to hold (default 0.99)")
    ranges.add_argument("--json", type=Path, default=None, help="also write the statistics here")
    ranges.set_defaults(run=_run_range)


def _common(parser: argparse.ArgumentParser) -> None:
    _dataset_options(parser)
    parser.add_argument("--out", type=Path, required=True, help="output folder (refused if not empty, see --overwrite)")
    _run_options(parser)
    parser.add_argument("--overwrite", action="store_true", help="replace files in an existing output folder")


def _dataset_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="COCO .json, VOC folder, or YOLO .yaml/folder")
    parser.add_argument("--split", default=None, help="YOLO yaml key or VOC ImageSets split (default: the reader's)")
    parser.add_argument("--images-dir", type=Path, default=None, help="image folder (COCO, VOC) when not guessed")


def _run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-images", type=int, default=None, help="analyse only the first N images")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2, help="image-decoding processes (default 2; 0: none)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    """The library's input errors, and a model without distributions, as one-line CommandErrors."""
    with user_errors():
        try:
            yield
        except ValueError as error:
            raise CommandError(str(error)) from error


def _device(args: argparse.Namespace):
    from gfocal.engine.distributed import resolve_device

    return resolve_device(args.device)


def _load(args: argparse.Namespace):
    from gfocal.data import load_dataset

    return load_dataset(args.data, images_dir=args.images_dir, split=args.split)


def _run_ambiguity(args: argparse.Namespace) -> int:
    from gfocal.analysis.pipeline import ambiguity_report
    from gfocal.models import load_model

    with _errors():
        records = _load(args)
        model = load_model(args.weights).to(_device(args))
        analysis = ambiguity_report(
            model, records, args.out, top_k=args.top_k, overwrite=args.overwrite, batch_size=args.batch_size,
            iou_threshold=args.iou, max_images=args.max_images, progress=not args.quiet, workers=args.workers,
        )  # fmt: skip
    print(f"{len(analysis.rows)} annotations in {analysis.settings['num_images']} images -> {args.out}/report.html")
    for row in analysis.rows[:5]:
        if row["ambiguity"] is not None:
            print(
                f"  #{row['rank']}  ambiguity {row['ambiguity']:.3f}  annotation {row['annotation_id']}  {row['file_name']}"
            )
    return 0


def _run_labels(args: argparse.Namespace) -> int:
    from gfocal.analysis.pipeline import label_report
    from gfocal.models import gfl_small, load_model

    with _errors():
        records = _load(args)
        if args.weights is not None:
            model = load_model(args.weights)
        else:
            size = {} if args.image_size is None else {"min_size": args.image_size, "max_size": args.image_size}
            model = gfl_small(records.num_classes, **size)
        statistics = label_report(
            model.to(_device(args)), records, args.out, overwrite=args.overwrite, batch_size=args.batch_size,
            max_images=args.max_images, progress=not args.quiet, workers=args.workers,
        )  # fmt: skip
    print(f"{'level':<6}{'positives':>10}{'IoU<0.1':>10}{'ctr<0.1':>10}{'mean IoU':>10}{'mean ctr':>10}")
    for name, level in statistics["levels"].items():
        iou, ctr = level["iou"], level["centerness"]
        if level["positives"]:
            print(
                f"{name:<6}{level['positives']:>10}{iou['tiny_fraction']:>10.2f}{ctr['tiny_fraction']:>10.2f}{iou['mean']:>10.2f}{ctr['mean']:>10.2f}"
            )
    print(f"-> {args.out}/labels.json, {args.out}/labels.png")
    return 0


def _run_range(args: argparse.Namespace) -> int:
    from gfocal.analysis.output import write_json
    from gfocal.analysis.range import edge_range_statistics, model_settings

    with _errors():
        records = _load(args)
        config = model_settings(records.num_classes, args.weights, args.model, args.image_size, args.reg_max)
        stats = edge_range_statistics(config, records, coverage=args.coverage)
        if args.json is not None:
            write_json(args.json, stats)
    print(
        f"reg_max {stats['reg_max']} at input {stats['input_size'][1]} px: {stats['positives']} positives of "
        f"{stats['boxes']} boxes; {stats['clamped_edge_fraction']:.1%} of their edges and "
        f"{stats['clamped_box_fraction']:.1%} of the boxes are beyond the range"
    )
    print(f"{'level':<6}{'stride':>7}{'range px':>10}{'positives':>10}{'clamped':>9}{'p99 strides':>13}")
    for name, level in stats["levels"].items():
        if level["positives"]:
            print(
                f"{name:<6}{level['stride']:>7}{level['range_pixels']:>10}{level['positives']:>10}"
                f"{level['clamped_edge_fraction']:>9.1%}{level['p99_distance']:>13.2f}"
            )
    print(f"suggested reg_max (holds {stats['coverage']:.0%} of the edges): {stats['suggested_reg_max']}")
    return 0


def _run_calibration(args: argparse.Namespace) -> int:
    from gfocal.analysis.calibration_report import calibration_report, save_calibrated
    from gfocal.models import load_model

    with _errors():
        records = _load(args)
        model = load_model(args.weights).to(_device(args))
        stats = calibration_report(
            model, records, args.out, overwrite=args.overwrite, bins=args.bins, iou_threshold=args.iou,
            batch_size=args.batch_size, max_images=args.max_images, progress=not args.quiet, workers=args.workers,
        )  # fmt: skip
        if args.save_calibrated is not None:
            save_calibrated(model, stats["fitted_std_scale"], args.save_calibrated)
    edges, score = stats["edges"], stats["score"]
    print(f"{stats['matched_boxes']} matched boxes in {stats['images']} images")
    print(
        f"edges: RMV {_number(edges['rmv'])} px, RMSE {_number(edges['rmse'])} px, ENCE {_number(edges['ence'])}, "
        f"Spearman(std, |error|) {_number(edges['spearman'])}; fitted std scale {stats['fitted_std_scale']:.3f}"
    )
    print(f"score: ECE {_number(score['ece'])}, Spearman(score, IoU) {_number(score['spearman'])}")
    if args.save_calibrated is not None:
        print(f"calibrated weights -> {args.save_calibrated}")
    print(f"-> {args.out}/calibration.json, reliability.png, report.html")
    return 0


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _run_fusion(args: argparse.Namespace) -> int:
    from gfocal.analysis.fusion import fused_dataset_detections
    from gfocal.analysis.output import write_json
    from gfocal.engine.evaluate import evaluate_detections
    from gfocal.models import load_model
    from gfocal.models.fusion import TestTimeAugmentation

    with _errors():
        records = _load(args)
        device = _device(args)
        models = [load_model(path).to(device) for path in args.weights]
        tta = TestTimeAugmentation(tuple(args.scales), args.flip)
        runs = fused_dataset_detections(
            models, records, tta, iou_threshold=args.iou, batch_size=args.batch_size, max_images=args.max_images,
            progress=not args.quiet, workers=args.workers,
        )  # fmt: skip
        subset = dataclasses.replace(records, images=records.images[: args.max_images])
        table = {
            method: {**_ap(evaluate_detections(subset, detections)), "seconds": seconds}
            for method, (detections, seconds) in runs.items()
        }
        if args.json is not None:
            write_json(args.json, {"models": [str(p) for p in args.weights], "views": tta.num_views, "methods": table})
    print(f"{len(models)} model(s) x {tta.num_views} view(s) on {len(subset.images)} images")
    print(f"{'method':<14}{'AP':>8}{'AP50':>8}{'AP75':>8}{'seconds':>10}")
    for method, row in table.items():
        print(f"{method:<14}{row['AP']:>8.3f}{row['AP50']:>8.3f}{row['AP75']:>8.3f}{row['seconds']:>10.1f}")
    return 0


def _ap(results: dict) -> dict[str, float]:
    return {key: results[key] for key in ("AP", "AP50", "AP75")}
