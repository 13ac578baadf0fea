"""The demo's training at a fixed number of epochs, to compare two checkouts' AP per step on a busy machine.

    PYTHONPATH=CHECKOUT/src python benchmarks/demo_steps.py --data DEMO/data --epochs 15 --out RUN [--json OUT.json]

``gfocal demo`` fills a 3.5-minute budget, so its AP mixes two things: how
many steps fit (the step time, ``benchmarks/cpu.py``) and what the recipe
makes of each step. On a machine shared with other work the first is noise,
so this script holds the steps fixed: it trains the ``paper-small`` recipe, the demo's before #28 (gfl_small
at 256 px, SGD lr 0.02 at batch 8, 100 warm-up iterations, cosine, no zoom,
mosaic, colour jitter or EMA) for ``--epochs`` epochs on the data a demo wrote
(``DEMO/data/{train,val}.json``), evaluates the final weights once on the
validation split and prints JSON. It builds the config with the fields that
every gfocal since the first demo has, so the same file runs on an older
checkout (point ``PYTHONPATH`` at its ``src``) and compares like with like.
"""

from __future__ import annotations

import argparse
import runpy
import time
from pathlib import Path

from common import add_json_argument, gfocal_commit, report

import gfocal
from gfocal.engine import TrainConfig, train

# This checkout's recipes, read from the file (plain data): the gfocal on PYTHONPATH may predate them.
RECIPES = runpy.run_path(str(Path(__file__).resolve().parents[1] / "src" / "gfocal" / "engine" / "recipes.py"))[
    "RECIPES"
]


def demo_config(data: Path, epochs: int, out: Path, seed: int) -> TrainConfig:
    """The ``paper-small`` recipe for exactly ``epochs`` epochs, evaluated only at the end.

    Fields the gfocal on ``PYTHONPATH`` does not know are left out: an older TrainConfig has no
    ``optimizer``, ``scale_range``, ``mosaic``, ``photometric`` or ``ema`` (it trained with SGD and flips only).
    """
    fields = {
        **RECIPES["paper-small"].values,
        "train_data": str(data / "train.json"),
        "val_data": str(data / "val.json"),
        "epochs": epochs,
        "seed": seed,
        "workers": 2,
        "out_dir": str(out),
    }
    known = TrainConfig.__dataclass_fields__
    return TrainConfig(**{k: v for k, v in fields.items() if k in known})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a demo's data folder (gfocal demo --out D: D/data)")
    parser.add_argument("--epochs", type=int, default=15, help="15 epochs of 300 images at batch 8: 555 steps")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    add_json_argument(parser, "demo_steps")
    args = parser.parse_args()
    started = time.perf_counter()
    result = train(demo_config(args.data, args.epochs, args.out, args.seed))
    report(
        {
            "checkout_commit": gfocal_commit(Path(gfocal.__file__).parent),  # the gfocal trained, maybe another
            "epochs": args.epochs,
            "iterations": result.iterations,
            "seconds": round(time.perf_counter() - started, 1),
            "AP": result.final_metrics["AP"],
            "AP50": result.final_metrics["AP50"],
        },
        args.json,
    )


if __name__ == "__main__":
    main()
