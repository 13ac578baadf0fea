"""Decode + augment throughput of DetectionDataset, with 0 and 2 DataLoader workers.

Writes a synthetic dataset (or reads --data), then times full passes of a
DataLoader after a warm-up pass; reports images/s per worker count with
torchvision's and Pillow's versions (``common.report``: the machine, commit and command too).

    python benchmarks/data.py --num-images 64 --image-size 640 --max-size 512
"""

from __future__ import annotations

import argparse
import tempfile
import time

import PIL
import torch
import torchvision
from common import add_json_argument, report
from torch.utils.data import DataLoader

from gfocal.data import DetectionDataset, collate_detection, load_dataset
from gfocal.data.synthetic import make_synthetic_dataset
from gfocal.data.transforms import Augmentation, build_transforms


def _images_per_second(dataset: DetectionDataset, workers: int, batch_size: int, repeats: int) -> list[float]:
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=collate_detection,
        persistent_workers=workers > 0,
    )
    for _ in loader:  # warm-up: worker start, page cache, allocator
        pass
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        count = sum(len(images) for images, _ in loader)
        rates.append(count / (time.perf_counter() - start))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="a dataset path (default: a synthetic one in a temp folder)")
    parser.add_argument("--num-images", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=640, help="synthetic image side, pixels")
    parser.add_argument("--image-format", default="jpg", choices=("jpg", "png"))
    parser.add_argument("--max-size", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    add_json_argument(parser, "data")
    parser.add_argument("--photometric", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)  # one decode per core, as in a training process with workers
    with tempfile.TemporaryDirectory() as tmp:
        path = args.data or make_synthetic_dataset(
            tmp,
            args.num_images,
            args.image_size,
            seed=0,
            image_format=args.image_format,
            size_range=(8, args.image_size // 2),
        )
        records = load_dataset(path)
        transforms = build_transforms(
            args.max_size, args.max_size, Augmentation(scale_range=(0.5, 1.5), color=args.photometric)
        )
        dataset = DetectionDataset(records, transforms, train=True)
        results = {}
        for workers in args.workers:
            rates = _images_per_second(dataset, workers, args.batch_size, args.repeats)
            results[f"workers_{workers}"] = {
                "images_per_s_median": sorted(rates)[len(rates) // 2],
                "images_per_s": [round(r, 1) for r in rates],
            }
    report({
        "dataset": str(args.data or f"synthetic {args.num_images} x {args.image_size}px {args.image_format}"),
        "max_size": args.max_size, "batch_size": args.batch_size, "photometric": args.photometric,
        "results": results, "torchvision": torchvision.__version__, "pillow": PIL.__version__,
    }, args.json)  # fmt: skip


if __name__ == "__main__":
    main()
