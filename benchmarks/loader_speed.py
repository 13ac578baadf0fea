"""Training steps per minute of ``gfocal train`` as users run it, for two or more checkouts run in turn.

    python benchmarks/loader_speed.py --data TRAIN.json --checkout HEAD~1 --checkout . [--epochs 8 | --time-budget 3]
        [--rounds 2] [--set key=value ...] [--json OUT]

Each ``--checkout`` is a checkout's folder or a git revision of this repository (checked out into a
temporary ``git worktree`` for the run, then removed). Each round runs ``gfocal train`` once per
checkout, in alternating order (A B, then B A), as a subprocess with ``PYTHONPATH`` at that checkout's
``src``, so that a machine's changing load falls on both alike. Every step is logged
(``log_interval=1``); from ``metrics.jsonl`` and ``last.pt`` each run reports:

* ``iterations`` and ``train_s``, the run's own clock (set-up excluded; steps, data waits, saves and
  evaluations included): ``steps_per_min`` = 60 x iterations / train_s;
* ``wall_s`` of the whole command (imports, set-up, the final export included);
* ``mean_iter_s`` and ``mean_data_s`` (the wait for the batch, part of the step time), and the data wait
  of the first step of each epoch apart (``epoch_start_data_s``), where a loader that restarts its
  workers each epoch waits;
* ``cpu_s`` and ``cpu_s_per_step``: CPU seconds of the command and its worker processes, which count
  work rather than time and so move little with other processes' load.

With ``--epochs`` every checkout takes the same steps (compare ``train_s`` and ``cpu_s``); with
``--time-budget`` the steps differ (compare ``steps_per_min``). Timings on a machine that runs other
work are disturbed: compare rounds, and the CPU seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch
from common import add_json_argument, gfocal_commit, report

REPO = Path(__file__).resolve().parents[1]


def checkout_root(spec: str, stack: ExitStack) -> Path:
    """The folder of a checkout: ``spec`` itself when it is one, else a temporary worktree of the revision ``spec``."""
    if (Path(spec) / "src" / "gfocal").is_dir():
        return Path(spec).resolve()
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="loader_speed-"))) / "checkout"
    git = ["git", "-C", str(REPO), "worktree"]
    subprocess.run([*git, "add", "--detach", str(folder), spec], check=True, stdout=sys.stderr)  # stdout: the JSON
    stack.callback(subprocess.run, [*git, "remove", "--force", str(folder)], check=True, stdout=sys.stderr)
    return folder


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def train_once(root: Path, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """One ``gfocal train`` of the checkout at ``root``; its speed figures (see the module's docstring)."""
    schedule = ["--time-budget", str(args.time_budget)] if args.time_budget else ["--epochs", str(args.epochs)]
    command = [sys.executable, "-m", "gfocal", "train", "--data", str(args.data), "--out", str(out), *schedule]
    command += ["--overwrite", "--set", "log_interval=1", *[part for value in args.set for part in ("--set", value)]]
    if args.val_data:
        command += ["--val-data", str(args.val_data)]
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    cpu_before, started = children_cpu_s(), time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=sys.stderr, stderr=sys.stderr)
    wall_s, cpu_s = time.perf_counter() - started, children_cpu_s() - cpu_before
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [row for row in rows if row["kind"] == "train"]
    setup = next(row for row in rows if row["kind"] == "setup")
    per_epoch = setup["train_images"] // setup["batch_size"]
    state = torch.load(out / "last.pt", map_location="cpu", weights_only=True)  # tensors and plain data
    iterations, train_s = int(state["iteration"]), float(state["elapsed_s"])
    starts = [row["data_time"] for row in steps if (row["iteration"] - 1) % per_epoch == 0]
    return {
        "checkout_commit": gfocal_commit(root),
        "iterations": iterations,
        "batches_per_epoch": per_epoch,
        "train_s": round(train_s, 2),
        "wall_s": round(wall_s, 2),
        "steps_per_min": round(60 * iterations / train_s, 3),
        "mean_iter_s": round(statistics.mean(row["iter_time"] for row in steps), 4),
        "mean_data_s": round(statistics.mean(row["data_time"] for row in steps), 4),
        "epoch_start_data_s": round(statistics.mean(starts), 4) if starts else None,
        "cpu_s": round(cpu_s, 2),
        "cpu_s_per_step": round(cpu_s / iterations, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data", type=Path, required=True, help="the training set (e.g. /work/data/bench/trees/train.json)"
    )
    parser.add_argument("--val-data", type=Path, help="a validation set: evaluations by time, as users run it")
    parser.add_argument(
        "--checkout",
        action="append",
        required=True,
        help="a checkout's folder or a git revision of this repository; give it twice or more to compare",
    )
    schedule = parser.add_mutually_exclusive_group()
    schedule.add_argument("--epochs", type=int, default=8, help="a fixed number of epochs (default 8)")
    schedule.add_argument("--time-budget", type=float, help="minutes: a budgeted run instead of fixed epochs")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each checkout, in alternating order")
    parser.add_argument("--set", action="append", default=[], help="a config override for every run (key=value)")
    parser.add_argument("--out", type=Path, help="the runs' folders go here (default: a temporary folder)")
    add_json_argument(parser, "loader_speed")
    args = parser.parse_args()
    with ExitStack() as stack:
        roots = [checkout_root(spec, stack) for spec in args.checkout]
        out = args.out or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="loader_speed-runs-")))
        runs: list[dict[str, Any]] = []
        for round_ in range(args.rounds):
            order = list(enumerate(roots)) if round_ % 2 == 0 else list(enumerate(roots))[::-1]
            for which, root in order:
                figures = train_once(root, args, out / f"round{round_}-checkout{which}")
                runs.append({"round": round_, "checkout": args.checkout[which], **figures})
                print(json.dumps(runs[-1]), file=sys.stderr)
    summary = {
        spec: {
            key: round(statistics.median(run[key] for run in runs if run["checkout"] == spec), 4)
            for key in ("steps_per_min", "train_s", "mean_iter_s", "mean_data_s", "cpu_s_per_step")
        }
        for spec in args.checkout
    }
    report(
        {
            "data": str(args.data),
            "schedule": {"time_budget_min": args.time_budget} if args.time_budget else {"epochs": args.epochs},
            "settings": args.set,
            "medians": summary,
            "runs": runs,
        },
        args.json,
    )


if __name__ == "__main__":
    main()
