"""Shared helpers for the benchmarks: timing with warm-up and the machine description in the JSON."""

from __future__ import annotations

import json
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def time_call(fn: Callable[[], Any], warmup: int = 3, repeats: int = 20) -> dict[str, float]:
    """Median and spread of the wall time of ``fn()`` in milliseconds, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        samples.append((time.perf_counter() - start) * 1e3)
    return {"median_ms": statistics.median(samples), "min_ms": min(samples), "repeats": repeats}


def _cpu_check(name: str) -> bool | None:
    """One of torch's private CPU feature checks; None where this torch lacks it."""
    check = getattr(torch.cpu, name, None)
    return None if check is None else bool(check())


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        # What the CPU offers torch: e.g. AVX2 (float32 only), or AVX512 with native bf16 and AMX tiles.
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_native_bf16": _cpu_check("_is_avx512_bf16_supported"),
        "cpu_amx": _cpu_check("_is_amx_tile_supported"),
        "threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def gfocal_commit(where: Path | None = None) -> str | None:
    """The git commit of the checkout these benchmarks are in (or of the one holding ``where``), ``+dirty``
    when it has uncommitted changes."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=where or Path(__file__).parent, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        return git("rev-parse", "HEAD") + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def provenance() -> dict[str, Any]:
    """The command that is running, the gfocal commit and the machine, for every results file."""
    return {
        "command": shlex.join([sys.executable.rsplit("/", 1)[-1], *sys.argv]),
        "gfocal_commit": gfocal_commit(),
        "machine": machine(),
    }


def report(results: dict[str, Any], path: str | Path | None = None, quiet: bool = False) -> None:
    """Print the results as JSON with their :func:`provenance`; also write it to ``path`` when given."""
    text = json.dumps({**provenance(), **results}, indent=2)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text + "\n")
    if not quiet:
        print(text)


def train_small(
    train_json: Path, val_json: Path, out: Path, precision: str, seed: int, *schedule: str
) -> dict[str, Any]:
    """``gfocal train`` with the demo's recipe at gfl_small's own 320 px; ``schedule`` sets the length
    (e.g. ``--epochs 12``, or ``--epochs 200 --time-budget 20``). Returns the final evaluation."""
    command = [
        sys.executable,
        "-m",
        "gfocal",
        "train",
        "--data",
        str(train_json),
        "--val-data",
        str(val_json),
        "--out",
        str(out),
        "--recipe",
        "demo",
        "--image-size",
        "320",
        *schedule,
        "--precision",
        precision,
        "--seed",
        str(seed),
        "--overwrite",
    ]
    subprocess.run(command, check=True, stdout=sys.stderr)  # stdout is for the JSON report
    evaluation = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if '"eval"' in line][-1]
    return {
        "command": shlex.join(["gfocal", *command[3:]]),
        "iterations": evaluation["iteration"],
        "AP": evaluation["AP"],
        "AP50": evaluation["AP50"],
        "APs": evaluation["APs"],
    }
