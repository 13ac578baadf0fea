"""Pretrained weights against training from scratch, at equal fine-tuning time (issue #16).

    python benchmarks/transfer.py --work runs/transfer --json docs/results/transfer-intel-amx.json

(the defaults: ``--seeds 0 1 2 --minutes 3.5 --pretrain-minutes 15 --pretrain-images 3000
--finetune-images 80 --held-out 100 --image-size 128 --mmdet-seeds 1``; about 57 minutes on a 2-core CPU: 15 of
pretraining, 10 fine-tuning runs of 3.5, and about 7 of data, start-up and test evaluations).

1. Writes two seeded synthetic datasets (``gfocal.data.synthetic``) with disjoint classes, all
   ``--image-size`` pixels square: the *pretraining* set, ``--pretrain-images`` images of the 16
   classes of ``PRETRAIN_CLASSES`` (four shapes, each in four textures: ``"ring/stripes"``), and the
   *target* set, ``--finetune-images`` training images of ``TARGET_CLASSES`` (the two other shapes, in
   any texture), plus val and test splits of ``--held-out`` images each.
2. Pretrains gfl_small once on the pretraining set for ``--pretrain-minutes``, and writes its final
   weights also as an mmdetection GFL checkpoint (``gfocal.interop.save_mmdet_checkpoint``).
3. For each variant x seed, trains on the target set for ``--minutes`` (``gfocal train --time-budget``)
   and evaluates the final weights on the target test split, which no run sees:

   - ``finetune``: from the pretrained ``model.safetensors`` with the ``finetune`` recipe (lr halved,
     short warm-up; it was picked by itself with ``--weights`` until this benchmark measured it);
   - ``finetune_default_recipe``: from the same weights with the default recipe (what the finetune
     recipe is worth; what ``--weights`` now trains with);
   - ``scratch``: gfl_small from random weights;
   - ``finetune_mmdet``: from the mmdetection checkpoint (``--weights model_mmdet.pth``), for the first
     ``--mmdet-seeds`` seeds only: it shows the path end to end. It reads the architecture the way every
     mmdetection file is read: frozen BatchNorm and a frozen stem (mmdetection's ``norm_eval``,
     ``frozen_stages=1``), so it is not the same run as ``finetune``.

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

from gfocal.data.render import SHAPES, TEXTURES

# gfocal.data.render.SHAPES holds six shapes and TEXTURES four: four shapes in every texture to pretrain on
# (16 classes), the other two shapes, in any texture, for the target.
PRETRAIN_SHAPES = ("rectangle", "ellipse", "triangle", "cross")
PRETRAIN_CLASSES = tuple(f"{shape}/{texture}" for shape in PRETRAIN_SHAPES for texture in TEXTURES)
TARGET_CLASSES = tuple(shape for shape in SHAPES if shape not in PRETRAIN_SHAPES)
DATASET = "synthetic_transfer"
VARIANTS = ("finetune", "finetune_default_recipe", "scratch", "finetune_mmdet")
MMDET_CHECKPOINT = "model_mmdet.pth"  # beside the pretraining run's model.safetensors


def variant_args(variant: str, pretrain_dir: Path, image_size: int) -> list[str]:
    """Extra ``gfocal train`` arguments of a fine-tuning variant, for ``image_size`` pixels square inputs."""
    size = ["--image-size", str(image_size)]
    weights = ["--weights", str(pretrain_dir / "model.safetensors")]
    variants = {
        "finetune": [*weights, "--recipe", "finetune", *size],
        "finetune_default_recipe": [*weights, "--recipe", "default", *size],
        "scratch": ["--model", "gfl_small", *size],
        # --image-size keeps mmdetection's 1333:800 ratio of sides, which would shrink square images to
        # 77 px; the sides are set as the pretraining run had them instead.
        "finetune_mmdet": [
            "--weights",
            str(pretrain_dir / MMDET_CHECKPOINT),
            "--recipe",
            "finetune",
            "--set",
            f"model_overrides.min_size={image_size}",
            "--set",
            f"model_overrides.max_size={image_size}",
        ],
    }
    return variants[variant]


def write_datasets(
    root: Path, pretrain_images: int, finetune_images: int, image_size: int, held_out: int = 100, seed: int = 0
) -> dict[str, dict[str, Path]]:
    """The pretraining and target datasets (train/val/test COCO jsons) under ``root``, written when missing.

    Returns ``{"pretrain": {"train", "val", "test"}, "target": {...}}`` json paths. The val and test splits
    hold a quarter of the pretraining images (20 to 200) and ``held_out`` target images.
    """
    from gfocal.data.synthetic import make_synthetic_dataset

    size_range = (max(8, image_size // 16), image_size // 2)
    specs = {
        "pretrain": (PRETRAIN_CLASSES, pretrain_images, min(200, max(20, pretrain_images // 4))),
        "target": (TARGET_CLASSES, finetune_images, held_out),
    }
    splits: dict[str, dict[str, Path]] = {}
    for name, (classes, train_images, others) in specs.items():
        folder = root / name
        counts = {"train": train_images, "val": others, "test": others}
        splits[name] = {}
        for split, count in counts.items():
            path = folder / f"{split}.json"
            if not _written(path, count, classes):
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


def _written(path: Path, count: int, classes: tuple[str, ...]) -> bool:
    if not path.is_file():
        return False
    coco = json.loads(path.read_text())
    return len(coco["images"]) == count and [c["name"] for c in coco["categories"]] == list(classes)


def write_mmdet_checkpoint(pretrain_dir: Path) -> Path:
    """The pretrained ``model.safetensors`` written as an mmdetection GFL checkpoint beside it."""
    from gfocal.interop import save_mmdet_checkpoint
    from gfocal.models import load_model

    return save_mmdet_checkpoint(load_model(pretrain_dir / "model.safetensors"), pretrain_dir / MMDET_CHECKPOINT)


def planned_runs(variants: list[str], seeds: list[int], mmdet_seeds: int) -> list[tuple[str, int]]:
    """``(variant, seed)`` in run order: every seed of each variant, the first ``mmdet_seeds`` of finetune_mmdet."""
    return [(v, s) for v in variants for s in (seeds[:mmdet_seeds] if v == "finetune_mmdet" else seeds)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--mmdet-seeds", type=int, default=1, help="how many of --seeds finetune_mmdet runs")
    parser.add_argument("--minutes", type=float, default=3.5, help="fine-tuning time budget of each run")
    parser.add_argument("--pretrain-minutes", type=float, default=15.0)
    parser.add_argument("--pretrain-images", type=int, default=3000)
    parser.add_argument("--finetune-images", type=int, default=80)
    parser.add_argument("--held-out", type=int, default=100, help="target images in each of val and test")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--work", type=Path, default=Path("runs/transfer"), help="datasets and run folders")
    add_json_argument(parser, "transfer")
    args = parser.parse_args(argv)
    splits = write_datasets(
        args.work / "data", args.pretrain_images, args.finetune_images, args.image_size, args.held_out
    )
    pretrain_dir = args.work / "pretrain"
    pretraining = run_gfocal(
        splits["pretrain"],
        pretrain_dir,
        args.pretrain_minutes,
        0,
        ["--model", "gfl_small", "--image-size", str(args.image_size)],
    )
    mmdet_checkpoint = write_mmdet_checkpoint(pretrain_dir)
    settings = {
        "minutes": args.minutes,
        "pretrain_minutes": args.pretrain_minutes,
        "image_size": args.image_size,
        "pretrain_images": args.pretrain_images,
        "finetune_images": args.finetune_images,
        "held_out": args.held_out,
        "mmdet_seeds": args.mmdet_seeds,
        "pretrain_classes": PRETRAIN_CLASSES,
        "target_classes": TARGET_CLASSES,
        "pretraining": pretraining,
        "mmdet_checkpoint": str(mmdet_checkpoint),
    }
    runs: list[dict[str, Any]] = []
    for variant, seed in planned_runs(args.variants, args.seeds, args.mmdet_seeds):
        extra = variant_args(variant, pretrain_dir, args.image_size)
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
