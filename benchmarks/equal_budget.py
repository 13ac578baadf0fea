"""Equal wall-clock budget: does ``--precision auto`` buy more iterations than fp32, and end as accurate?

    python benchmarks/equal_budget.py [--minutes 20] [--out runs/equal_budget] [--precisions fp32 auto]

Writes a COCO-format dataset unlike the demo's (320 px JPEGs, all six shape
classes, 2-12 objects of 6-160 px, more blur and occlusion), then runs
``gfocal train`` on it once per precision with the same ``--time-budget``,
seed and recipe, and prints JSON with iterations, AP and AP50 of each.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import add_json_argument, report, train_small

from gfocal.data.synthetic import SHAPES, make_synthetic_splits


def make_dataset(root: Path, seed: int) -> tuple[Path, Path]:
    return make_synthetic_splits(
        root,
        "demo",
        seed,
        num_train=600,
        num_val=100,
        image_size=(320, 320),
        classes=SHAPES,
        objects_per_image=(2, 12),
        size_range=(6, 160),
        blur_fraction=0.25,
        occlusion_fraction=0.25,
        image_format="jpg",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--out", default="runs/equal_budget")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "auto"])
    parser.add_argument("--seed", type=int, default=0)
    add_json_argument(parser, "equal_budget")
    args = parser.parse_args()
    out = Path(args.out)
    train_json, val_json = make_dataset(out / "data", args.seed)
    schedule = ("--epochs", "200", "--time-budget", str(args.minutes))
    runs = {p: train_small(train_json, val_json, out / p, p, args.seed, *schedule) for p in args.precisions}
    report({"minutes": args.minutes, "dataset": str(train_json.parent), "runs": runs}, args.json)


if __name__ == "__main__":
    main()
