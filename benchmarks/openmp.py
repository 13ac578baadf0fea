"""How OpenMP's waiting policy changes training speed, on an idle machine and beside a busy core.

    python benchmarks/openmp.py [--iterations 40] [--settings default passive spin10000]

PyTorch's CPU kernels run on OpenMP threads (libgomp in the Linux wheels). Between
parallel regions those threads spin for a while before sleeping. Spinning is
fastest on an idle machine. When another process wants a core (a data-loading
worker, a second job), a spinning thread takes that core away from the thread
that has the work. Each setting trains gfl_small (256 px, batch 8, 2 data
workers, the auto precision) for a few dozen iterations in a fresh process,
once alone and once beside a process that keeps one core busy. The JSON gives
the median seconds per iteration.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import add_json_argument, report

from gfocal.data.synthetic import make_synthetic_splits

SETTINGS = {
    "default": {},
    "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
    "spin10000": {"GOMP_SPINCOUNT": "10000"},  # what the gfocal CLI sets
    "spin2000": {"GOMP_SPINCOUNT": "2000"},
}
TRAIN = """
import sys
from gfocal.engine import TrainConfig, train
train(TrainConfig(model="gfl_small", model_overrides={"min_size": 256, "max_size": 256}, train_data=sys.argv[1],
                  epochs=1, batch_size=8, lr=0.02, warmup_iters=10, eval_interval=0, seed=0, workers=2,
                  channels_last=True, log_interval=1, out_dir=sys.argv[2]))
"""
BUSY = "while True: pass"


def seconds_per_iteration(train_json: Path, out: Path, env: dict[str, str], busy: bool) -> float:
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    hog = subprocess.Popen([sys.executable, "-c", BUSY]) if busy else None
    try:
        subprocess.run(
            [sys.executable, "-c", TRAIN, str(train_json), str(out)],
            env={**clean, **env},
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    times = [row["iter_time"] for row in rows if row.get("kind") == "train"]
    return statistics.median(times[3:])  # the first steps include allocator warm-up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--settings", nargs="+", default=["default", "passive", "spin10000"], choices=sorted(SETTINGS))
    add_json_argument(parser, "openmp")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        train_json, _ = make_synthetic_splits(root / "data", "hard", 0, args.iterations * 8, 1)
        results = {
            name: {
                "env": SETTINGS[name],
                "idle_s_per_iter": seconds_per_iteration(train_json, root / f"{name}_idle", SETTINGS[name], busy=False),
                "one_core_busy_s_per_iter": seconds_per_iteration(
                    train_json, root / f"{name}_busy", SETTINGS[name], busy=True
                ),
            }
            for name in args.settings
        }
    report({"iterations": args.iterations, "settings": results}, args.json)


if __name__ == "__main__":
    main()
