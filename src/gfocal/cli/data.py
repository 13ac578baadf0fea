"""``gfocal data``: look at a dataset (summary) or make a synthetic one."""

from __future__ import annotations

import argparse
from pathlib import Path

from gfocal.cli.common import user_errors


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="dataset tools: summary, synthetic", description="Dataset tools.")
    commands = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)

    summary = commands.add_parser(
        "summary",
        help="images, boxes per class, box sizes, problems found",
        description="Load a dataset (COCO json, Pascal VOC folder or YOLO data yaml) with validation, "
        "print what it holds and what was wrong with it, and save a plot.",
    )
    summary.add_argument("path", help="COCO .json, VOC folder, or YOLO .yaml")
    summary.add_argument("--images", default=None, help="images folder (COCO: default is resolved from the json)")
    summary.add_argument("--split", default=None, help="YOLO yaml split (train/val/test) or VOC ImageSets split")
    summary.add_argument("--png", default=None, help="where to save the plot (default: no plot)")
    summary.add_argument("--strict", action="store_true", help="treat every data problem as an error")
    summary.set_defaults(run=run_summary)

    synthetic = commands.add_parser(
        "synthetic",
        help="write a seeded synthetic detection dataset (COCO format)",
        description="Write train and val splits of a synthetic dataset: shapes of several classes on textured "
        "backgrounds, sizes from tiny to large, occlusion and blurred edges, recorded per annotation.",
    )
    synthetic.add_argument("out", help="output folder")
    synthetic.add_argument("--preset", default="demo", help="demo (default) or hard")
    synthetic.add_argument("--seed", type=int, default=0)
    synthetic.add_argument("--num-train", type=int, default=None)
    synthetic.add_argument("--num-val", type=int, default=None)
    synthetic.set_defaults(run=run_synthetic)


def run_summary(args: argparse.Namespace) -> int:
    from gfocal.data.summary import summarize_dataset

    with user_errors():
        summary = summarize_dataset(args.path, args.png, images_dir=args.images, strict=args.strict, split=args.split)
    print(summary.to_text())
    if args.png:
        print(f"plot: {args.png}")
    return 0


def run_synthetic(args: argparse.Namespace) -> int:
    from gfocal.data.synthetic import make_synthetic_splits

    train, val = make_synthetic_splits(Path(args.out), args.preset, args.seed, args.num_train, args.num_val)
    print(f"train: {train}\nval:   {val}")
    return 0
