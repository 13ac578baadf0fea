"""Equal iterations: does bf16 training end as accurate as fp32 on the demo data?

    python benchmarks/equal_iterations.py [--epochs 12] [--seeds 0 1] [--out runs/equal_iterations]

Writes the demo's synthetic data (``gfocal demo``'s defaults: 300 + 60 images of
256 px), then trains gfl_small with the ``paper-small`` recipe (the demo's before #28) for the same number of
epochs (so the same iterations) in fp32 and in bf16, for each seed. Prints JSON
with each run's AP and, per seed and on average, bf16 AP minus fp32 AP; the
difference between seeds within one precision shows how large run-to-run noise is.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from common import add_json_argument, report, train_small

from gfocal.data.synthetic import make_synthetic_splits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--out", default="runs/equal_iterations")
    add_json_argument(parser, "equal_iterations")
    args = parser.parse_args()
    out = Path(args.out)
    train_json, val_json = make_synthetic_splits(out / "data", "demo", 0, 300, 60)
    runs = {
        precision: {
            seed: train_small(
                train_json, val_json, out / f"{precision}_seed{seed}", precision, seed, "--epochs", str(args.epochs)
            )
            for seed in args.seeds
        }
        for precision in ("fp32", "bf16")
    }
    differences = [runs["bf16"][seed]["AP"] - runs["fp32"][seed]["AP"] for seed in args.seeds]
    report(
        {
            "runs": runs,
            "bf16_minus_fp32_AP": {"per_seed": differences, "mean": statistics.mean(differences)},
            "seed_spread_AP": {
                p: max(r["AP"] for r in runs[p].values()) - min(r["AP"] for r in runs[p].values()) for p in runs
            },
        },
        args.json,
    )


if __name__ == "__main__":
    main()
