"""Large images: resizing the whole image against tiles merged by NMS, greedy NMM and the distribution-aware merge.

    python benchmarks/tiling.py [--minutes 7] [--out runs/tiling] [--json docs/results/tiling.json] [--run FOLDER]

1. Writes scenes of 2400 x 2400 pixels (3 to train on, 2 to test on), each with a few hundred
   small objects (14-40 px: three shape classes) in clusters of touching neighbours (0-2 px apart),
   on noise and gradient backgrounds with clutter.
2. Trains ``gfl_nano`` (416 px input) on 416 px tiles of the training scenes with
   ``gfocal train --tile 416`` for ``--minutes`` (default recipe, no validation).
3. Scores the test scenes on their full images (COCO AP, up to 1000 detections per image) for
   (a) the whole image resized to the network input, (a') the whole image at its own size in one
   pass, (b) tiles + NMS, (c) tiles + SAHI-style greedy NMM, (d) tiles + the distribution-aware
   merge, all tiles 416 px at overlap 0.2 through the same weights; and the time per megapixel
   (decoded image to merged detections, after a warm-up).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from common import add_json_argument, report
from PIL import Image

from gfocal.data import load_dataset
from gfocal.data.image_io import decode_image
from gfocal.data.render import background, class_colour, shape_mask, texture
from gfocal.engine.evaluate import evaluate_detections
from gfocal.models import load_model
from gfocal.models.precision import autocast, prepare_for_inference, resolve_precision
from gfocal.tiling import TiledDetector, TilingConfig

SIDE = 2400
CLASSES = ("rectangle", "ellipse", "triangle")
TILE, OVERLAP = 416, 0.2
MAX_DETECTIONS = 1000


def render_scene(rng: np.random.Generator, objects: int) -> tuple[np.ndarray, list[tuple[list[float], int]]]:
    """One scene (uint8 [SIDE, SIDE, 3]) and its ``(xyxy box, label)`` list: clusters of touching objects."""
    canvas = background(rng, SIDE, SIDE, ("noise", "gradient", "clutter"), clutter=60)
    annotations: list[tuple[list[float], int]] = []
    zones: list[tuple[int, int, int, int]] = []
    while len(annotations) < objects:
        rows, cols, cell, gap = (
            rng.integers(1, 4),
            rng.integers(1, 6),
            int(rng.integers(14, 41)),
            int(rng.integers(0, 3)),
        )
        width, height = cols * (cell + gap), rows * (cell + gap)
        x0, y0 = int(rng.integers(8, SIDE - width - 8)), int(rng.integers(8, SIDE - height - 8))
        zone = (x0 - 8, y0 - 8, x0 + width + 8, y0 + height + 8)
        if any(zone[0] < z[2] and z[0] < zone[2] and zone[1] < z[3] and z[1] < zone[3] for z in zones):
            continue
        zones.append(zone)
        for r in range(rows):
            for c in range(cols):
                w, h = (max(10, round(cell * rng.uniform(0.85, 1.0))) for _ in range(2))
                left, top = x0 + c * (cell + gap), y0 + r * (cell + gap)
                label = int(rng.integers(len(CLASSES)))
                alpha = shape_mask(CLASSES[label], w, h)[..., None]
                fill = texture(rng, h, w, class_colour(rng, label, len(CLASSES)))
                patch = canvas[top : top + h, left : left + w]
                canvas[top : top + h, left : left + w] = alpha * fill + (1 - alpha) * patch
                annotations.append(([left, top, left + w, top + h], label))
    return np.clip(canvas + 0.5, 0, 255).astype(np.uint8), annotations


def write_split(root: Path, split: str, count: int, seed: int) -> Path:
    """``count`` scenes as PNG files and a COCO json; returns the json path."""
    images, annotations = [], []
    for index in range(count):
        rng = np.random.default_rng([seed, len(split), index])
        pixels, objects = render_scene(rng, int(rng.integers(300, 450)))
        name = f"{split}/{index}.png"
        (root / split).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(root / name, compress_level=1)
        images.append({"id": index + 1, "file_name": name, "width": SIDE, "height": SIDE})
        for (x0, y0, x1, y1), label in objects:
            annotations.append({
                "id": len(annotations) + 1, "image_id": index + 1, "category_id": label + 1,
                "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0), "iscrowd": 0,
            })  # fmt: skip
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(CLASSES)]
    path = root / f"{split}.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def train(train_json: Path, out: Path, minutes: float, seed: int) -> dict:
    command = [
        sys.executable, "-m", "gfocal", "train", "--data", str(train_json), "--out", str(out), "--model", "gfl_nano",
        "--tile", str(TILE), "--time-budget", str(minutes), "--batch-size", "8", "--seed", str(seed), "--overwrite",
        "--set", f"tile_overlap={OVERLAP}",
    ]  # fmt: skip
    subprocess.run(command, check=True, stdout=sys.stderr)  # stdout is for the JSON report
    return {"command": shlex.join(["gfocal", *command[3:]]), **run_summary(out)}


def run_summary(run: Path) -> dict:
    """The last logged iteration, seconds per step and the weights of a finished training run folder."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [row for row in rows if row.get("kind") == "train"]
    return {
        "run": str(run),
        "last_logged_iteration": max(row.get("iteration", 0) for row in rows),  # logged every log_interval
        "seconds_per_step": round(sum(row["iter_time"] for row in steps) / len(steps), 2),
        "weights": str(run / "model.safetensors"),
    }


def methods(weights: Path, precision: str) -> dict[str, torch.nn.Module]:
    """Each way of predicting a whole scene, on the same weights."""

    def model(**overrides):
        return prepare_for_inference(load_model(weights, **overrides))

    tiles = model()  # up to 100 detections per 416 px tile (the model's own limit), more per whole image
    return {
        "resize_whole_image": model(max_detections=MAX_DETECTIONS),
        "whole_image_native_size": model(image_size=SIDE, max_detections=MAX_DETECTIONS),
        **{f"tiles_{merge}": TiledDetector(tiles, TilingConfig(TILE, OVERLAP, merge, batch_size=8)) for merge in ("nms", "nmm", "dist")},
    }  # fmt: skip


def score(network: torch.nn.Module, records, images: list[torch.Tensor], precision: str) -> dict:
    chosen = resolve_precision(precision, torch.device("cpu"))
    with torch.inference_mode(), autocast(chosen):
        network([images[0][:, :TILE, :TILE]])  # warm-up
        started = time.perf_counter()
        detections = {index: network([image])[0] for index, image in enumerate(images)}
        seconds = time.perf_counter() - started
    results = evaluate_detections(records, detections, max_detections=MAX_DETECTIONS)
    megapixels = sum(image.shape[-1] * image.shape[-2] for image in images) / 1e6
    return {
        **{name: round(results[name], 4) for name in ("AP", "AP50", "AP75", "APs", "APm", "AR100")},
        "detections": sum(len(d["scores"]) for d in detections.values()),
        "seconds_per_megapixel": round(seconds / megapixels, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=7.0, help="training time budget")
    parser.add_argument("--out", default="runs/tiling")
    add_json_argument(parser, "tiling")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run", default=None, help="skip training: score this finished run folder's weights")
    args = parser.parse_args()
    out = Path(args.out)
    train_json = write_split(out / "data", "train", 3, args.seed)
    test_json = write_split(out / "data", "test", 2, args.seed)
    training = run_summary(Path(args.run)) if args.run else train(train_json, out / "run", args.minutes, args.seed)
    records = load_dataset(test_json)
    images = [decode_image(image.path) for image in records.images]
    results = {
        name: score(net, records, images, args.precision)
        for name, net in methods(Path(training["weights"]), args.precision).items()
    }
    report(
        {
            "scenes": {"side": SIDE, "train": 3, "test": 2, "test_objects": sum(len(i.annotations) for i in records.images)},
            "tile": TILE, "overlap": OVERLAP, "max_detections": MAX_DETECTIONS,
            "training": training, "results": results,
        },
        args.json,
    )  # fmt: skip


if __name__ == "__main__":
    main()
