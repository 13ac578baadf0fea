"""``gfocal select``: choose the unlabelled images to label next, from one forward pass each.

Parsing and printing only; the work is in :mod:`gfocal.analysis.selection_report`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gfocal.cli.common import CommandError, positive_int, user_errors

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "select",
        help="rank unlabelled images by the model's uncertainty and pick the ones to label (active learning)",
        description="Run a trained GFL model once over a folder of unlabelled images and rank them by "
        "localisation uncertainty (the spread of the learned edge distributions relative to box size) and "
        "classification margin, optionally trading some uncertainty for diversity. Writes selected.csv, "
        "selected.txt (a YOLO image list), selected.json and contact_sheet.png.",
    )
    parser.add_argument("--weights", type=Path, required=True, help="gfocal weights file (.safetensors)")
    parser.add_argument("--images", type=Path, required=True, help="folder of unlabelled images (searched recursively)")
    parser.add_argument("--budget", type=positive_int, required=True, help="how many images to choose")
    parser.add_argument("--out", type=Path, required=True, help="output folder (refused if not empty, see --overwrite)")
    parser.add_argument(
        "--diversity", type=float, default=0.0, help="0 (default): most uncertain first; up to 1: spread the picks"
    )
    parser.add_argument("--sheet", type=int, default=12, help="images on the contact sheet (default 12)")
    parser.add_argument("--min-score", type=float, default=0.3, help="least score of a box drawn on the sheet")
    parser.add_argument("--batch-size", type=positive_int, default=4)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    parser.add_argument("--overwrite", action="store_true", help="replace files in an existing output folder")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from gfocal.analysis.selection_report import selection_report
    from gfocal.engine.distributed import resolve_device
    from gfocal.engine.predict import find_images
    from gfocal.models import load_model

    if not 0.0 <= args.diversity <= 1.0:
        raise CommandError(f"--diversity must be in [0, 1], got {args.diversity}")
    if not args.images.is_dir():
        raise CommandError(f"--images {args.images} is not a folder")
    with user_errors():
        paths = find_images(args.images)
        model = load_model(args.weights)
        if not model.head.box_coding.has_distributions:
            raise CommandError(f"{args.weights}: selection needs a model with learned distributions (box='dfl')")
        rows = selection_report(
            model.to(resolve_device(args.device)), paths, args.images, args.out, args.budget, args.diversity,
            args.sheet, args.min_score, args.overwrite, batch_size=args.batch_size, progress=not args.quiet,
        )  # fmt: skip
    print(f"chose {len(rows)} of {len(paths)} images -> {args.out}/selected.csv, selected.txt, contact_sheet.png")
    for row in rows[:5]:
        print(
            f"  #{row['rank']}  uncertainty {row['uncertainty']:.2f}  (localisation {row['localisation']:.3f}, "
            f"classification {row['classification']:.2f})  {row['file_name']}"
        )
    return 0
