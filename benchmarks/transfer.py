"""Pretrained weights against training from scratch, at equal fine-tuning time (issue #16).

    python benchmarks/transfer.py [--seeds 0 1 2] [--minutes 5] [--pretrain-minutes 30] \\
        [--pretrain-images 3000] [--finetune-images 80] [--work runs/transfer] [--json docs/results/transfer.json]

1. Writes two seeded synthetic datasets (``gfocal.data.synthetic``) with disjoint classes:
   the *pretraining* set (``--pretrain-images`` images of the shapes in ``PRETRAIN_CLASSES``)
   and the *target* set (``--finetune-images`` training images of ``TARGET_CLASSES``, plus
   val and test splits), all ``--image-size`` pixels square.
2. Pretrains gfl_small once on the pretraining set for ``--pretrain-minutes``.
3. For each variant x seed, trains on the target set for ``--minutes`` (``gfocal train
   --time-budget``) and evaluates the final weights on the target test split, which no run
   sees: ``finetune`` starts from the pretrained ``model.safetensors`` (the finetune recipe, picked
   by itself), ``finetune_default_recipe`` from the same weights with the from-scratch recipe (what
   the finetune recipe is worth), ``scratch`` from random weights.

Prints JSON (every run, mean/std per variant, the pretraining run) via ``common.report``, also to
``--json`` (rewritten after each run, ``"complete": false`` until the end); a markdown table goes
to stderr, the children's output to stderr.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from common import add_json_argument, report
from small_data import markdown, run_gfocal, summarise

# gfocal.data.render.SHAPES holds six shapes: four to pretrain on, the other two for the target.
PRETRAIN_CLASSES = ("rectangle", "ellipse", "triangle", "cross")
TARGET_CLASSES = ("diamond", "ring")
DATASET = "synthetic_transfer"
VARIANTS = ("finetune", "finetune_default_recipe", "scratch")


def variant_args(variant: str, pretrained: Path) -> list[str]:
    """Extra ``gfocal train`` arguments of a fine-tuning variant."""
    variants = {
        "finetune": ["--weights", str(pretrained)],
        "finetune_default_recipe": ["--weights", str(pretrained), "--recipe", "default"],
        "scratch": ["--model", "gfl_small"],
    }
    return variants[variant]


def write_datasets(
    root: Path, pretrain_images: int, finetune_images: int, image_size: int, seed: int = 0
) -> dict[str, dict[str, Path]]:
    """The pretraining and target datasets (train/val/test COCO jsons) under ``root``, written when missing.

    Returns ``{"pretrain": {"train", "val", "test"}, "target": {...}}`` json paths. The val and test splits
    hold a quarter of the pretraining images (at least 20) and 100 target images (at least ``finetune_images``).
    """
    from gfocal.data.synthetic import make_synthetic_dataset

    size_range = (max(8, image_size // 16), image_size // 2)
    specs = {
        "pretrain": (PRETRAIN_CLASSES, pretrain_images, max(20, pretrain_images // 4)),
        "target": (TARGET_CLASSES, finetune_images, max(100, finetune_images)),
    }
    splits: dict[str, dict[str, Path]] = {}
    for name, (classes, train_images, held_out) in specs.items():
        folder = root / name
        counts = {"train": train_images, "val": held_out, "test": held_out}
        splits[name] = {}
        for split, count in counts.items():
            path = folder / f"{split}.json"
            if not path.is_file() or len(json.loads(path.read_text())["images"]) != count:
                make_synthetic_dataset(
                    folder,
                    count,
                    image_size=image_size,
                    seed=seed,
                    split=split,
                    classes=classes,
                    size_range=size_range,
                    objects_per_image=(1, 4),
                )
            splits[name][split] = path
    return splits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--minutes", type=float, default=5.0, help="fine-tuning time budget of each run")
    parser.add_argument("--pretrain-minutes", type=float, default=30.0)
    parser.add_argument("--pretrain-images", type=int, default=3000)
    parser.add_argument("--finetune-images", type=int, default=80)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--work", type=Path, default=Path("runs/transfer"), help="datasets and run folders")
    add_json_argument(parser, "transfer")
    args = parser.parse_args()
    splits = write_datasets(args.work / "data", args.pretrain_images, args.finetune_images, args.image_size)
    size = ["--image-size", str(args.image_size)]
    pretraining = run_gfocal(
        splits["pretrain"], args.work / "pretrain", args.pretrain_minutes, 0, ["--model", "gfl_small", *size]
    )
    pretrained = args.work / "pretrain" / "model.safetensors"
    settings = {
        "minutes": args.minutes,
        "pretrain_minutes": args.pretrain_minutes,
        "image_size": args.image_size,
        "pretrain_images": args.pretrain_images,
        "finetune_images": args.finetune_images,
        "pretrain_classes": PRETRAIN_CLASSES,
        "target_classes": TARGET_CLASSES,
        "pretraining": pretraining,
    }
    runs: list[dict[str, Any]] = []
    for variant in args.variants:
        for seed in args.seeds:
            extra = [*variant_args(variant, pretrained), *size]
            run: dict[str, Any] = {"dataset": DATASET, "variant": variant, "seed": seed, "args": extra}
            try:
                run |= run_gfocal(splits["target"], args.work / variant / f"seed{seed}", args.minutes, seed, extra)
            except (subprocess.CalledProcessError, OSError, StopIteration, KeyError, ValueError) as exc:
                run["error"] = repr(exc)  # the other runs still count
            runs.append(run)
            print(json.dumps(run), file=sys.stderr, flush=True)
            if args.json:
                report({"complete": False, **settings, "runs": runs}, args.json, quiet=True)
    summary = summarise(runs)
    print(markdown(summary, args.minutes), file=sys.stderr)
    report({"complete": True, **settings, "summary": summary, "runs": runs}, args.json)


if __name__ == "__main__":
    main()
