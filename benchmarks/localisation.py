"""Where each detector loses AP75 on one dataset: in its boxes, its ranking or its duplicates.

    python benchmarks/localisation.py --data D/test.json --weights gfocal=RUN/model.safetensors \\
        --detections yolov8n=yolo_dets.json [--score-threshold 0.3] [--json PATH]

Each run is a gfocal weights file (``--weights [LABEL=]PATH``: gfocal's inference over the images as
decoded, float32) or a detections file of any detector (``--detections [LABEL=]PATH``:
``{file_name: {"boxes": [[x1, y1, x2, y2], ...], "scores": [...], "labels": [...]}}`` in original image
pixels, labels 0..C-1, keyed by the image's ``file_name`` as the COCO json writes it: what
``benchmarks/yolo_peer.py`` prints under ``detections.last``). Both options repeat; runs keep their
order, and their label defaults to the file's stem. Every run gets
:func:`gfocal.analysis.localisation.diagnose_localisation` (AP at each IoU, best-match IoU, signed edge
errors, score-IoU Spearman, duplicates, the oracle decomposition); a gfocal model with edge
distributions also gets their shape at the objects
(:func:`gfocal.analysis.localisation_shape.shape_at_objects`). One JSON holds all runs
(``common.report``); ``benchmarks/tables.py`` renders docs/localisation.md's table from it.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: a shared, busy CPU

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch
from common import add_json_argument, report

from gfocal.analysis.localisation import diagnose_localisation
from gfocal.analysis.localisation_shape import predict_with_shapes, shape_at_objects
from gfocal.data import DatasetError, DatasetRecords, DetectionDataset, load_dataset
from gfocal.engine.distributed import resolve_device
from gfocal.engine.evaluate import predict_dataset
from gfocal.models import load_model


def run_argument(kind: str) -> Any:
    """An argparse ``type`` for ``[LABEL=]PATH``: ``(kind, label, path)``."""

    def parse(text: str) -> tuple[str, str, Path]:
        label, _, path = text.rpartition("=")
        return kind, label or Path(path).stem, Path(path)

    return parse


def read_detections(path: Path, records: DatasetRecords) -> dict[int, dict[str, Any]]:
    """A detections file keyed by ``file_name``, keyed by image index instead; every name must be an image of
    ``records`` (an image left out has no detections)."""
    found = json.loads(path.read_text())
    index = {image.file_name: i for i, image in enumerate(records.images)}
    unknown = sorted(set(found) - set(index))
    if unknown:
        raise DatasetError(f"{path}: {len(unknown)} file names are not images of the dataset, e.g. {unknown[0]!r}")
    return {index[name]: detection for name, detection in found.items()}


def gfocal_detections(
    weights: Path, records: DatasetRecords, device: torch.device, batch_size: int
) -> tuple[dict[int, Any], dict[int, Any] | None]:
    """The model's detections of every image and, with a distribution head, each detection's edge shape."""
    model = load_model(weights).to(device).eval()
    if model.config.num_classes != records.num_classes:
        raise DatasetError(f"{weights}: {model.config.num_classes} classes, the dataset {records.num_classes}")
    with torch.inference_mode():
        if model.head.box_coding.has_distributions:
            return predict_with_shapes(model, records, batch_size)
        return predict_dataset(model, DetectionDataset(records), device, batch_size), None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the labelled dataset (COCO json, VOC, YOLO)")
    parser.add_argument("--weights", dest="runs", action="append", type=run_argument("gfocal"), default=[],
                        metavar="[LABEL=]PATH", help="a gfocal weights file (repeat for more)")  # fmt: skip
    parser.add_argument("--detections", dest="runs", action="append", type=run_argument("detections"),
                        metavar="[LABEL=]PATH", help="a detections JSON keyed by file_name (repeat for more)")  # fmt: skip
    parser.add_argument("--score-threshold", type=float, default=0.3, help="the least score a user would keep")
    parser.add_argument("--max-detections", type=int, default=100, help="detections per image COCO scores")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--device", default=None, help="default: a GPU if there is one, else the CPU")
    add_json_argument(parser, "localisation")
    args = parser.parse_args()
    if not args.runs:
        parser.error("give at least one --weights or --detections")
    records = load_dataset(args.data)
    device = resolve_device(args.device)
    runs = []
    for kind, label, path in args.runs:
        shapes = None
        if kind == "gfocal":
            detections, shapes = gfocal_detections(path, records, device, args.batch_size)
        else:
            detections = read_detections(path, records)
        run = {"label": label, "kind": kind, "source": str(path)}
        run |= diagnose_localisation(records, detections, args.score_threshold, max_detections=args.max_detections)
        if shapes is not None:
            run["distribution_shape"] = shape_at_objects(records, detections, shapes, args.score_threshold)
        print(f"{label}: {run['verdict']}", file=sys.stderr)
        runs.append(run)
    objects = sum(not a.ignore for image in records.images for a in image.annotations)
    report({"dataset": str(args.data), "images": len(records.images), "objects": objects, "runs": runs}, args.json)


if __name__ == "__main__":
    main()
