"""Shared helpers for the benchmarks: timing with warm-up, and the raw JSON every benchmark writes.

Every benchmark takes ``--json PATH`` (:func:`add_json_argument`) and ends with :func:`report`: its
results, with the command, the gfocal commit and the machine (CPU, its SIMD and matrix flags, torch),
go to stdout and to ``docs/results/<benchmark>-<machine tag>.json`` unless told otherwise, so that
results from another machine land in a file of their own. ``benchmarks/tables.py`` makes the docs'
tables from those files.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
# The /proc/cpuinfo flags that decide torch's CPU kernels: vector width, bf16/fp16 and VNNI dot products, AMX tiles.
SIMD_FLAGS = re.compile(r"(avx\w*|amx\w*|fma|f16c)")


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


def _cpuinfo(field: str) -> str | None:
    """The first ``field`` line of /proc/cpuinfo (Linux); None elsewhere."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.split(":", 1)[0].strip() == field), None)
    except OSError:
        return None


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    flags = (_cpuinfo("flags") or "").split()
    return {
        "cpu": _cpuinfo("model name") or platform.processor() or platform.machine(),
        "cpu_cores": os.cpu_count(),
        "cpu_flags": [flag for flag in flags if SIMD_FLAGS.fullmatch(flag)],
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


def machine_tag(description: dict[str, Any]) -> str:
    """A short name for a :func:`machine` in results file names: e.g. ``intel-amx``, ``amd-avx2``, or the GPU's."""
    if description["cuda"]:
        return re.sub(r"[^a-z0-9]+", "-", description["cuda"].lower()).strip("-")
    vendor = next((v for v in ("intel", "amd") if v in description["cpu"].lower()), platform.machine().lower())
    if description["cpu_amx"]:
        return f"{vendor}-amx"
    if description["cpu_native_bf16"]:
        return f"{vendor}-avx512bf16"
    return f"{vendor}-{description['cpu_capability'].lower()}"


def add_json_argument(parser: argparse.ArgumentParser, benchmark: str) -> None:
    """``--json PATH``: where :func:`report` writes the results; by default
    ``docs/results/<benchmark>-<machine tag>.json``; ``--json -`` only prints them."""
    default = RESULTS / f"{benchmark}-{machine_tag(machine())}.json"
    parser.add_argument(
        "--json",
        default=str(default),
        help=f"write the raw JSON here (default: {default.relative_to(RESULTS.parents[1])}; '-': stdout only)",
    )


def provenance() -> dict[str, Any]:
    """The command that is running, the gfocal commit and the machine, for every results file; with the
    load averages over the last 1, 5 and 15 minutes (other work on the machine slows timings)."""
    return {
        "command": shlex.join([sys.executable.rsplit("/", 1)[-1], *sys.argv]),
        "gfocal_commit": gfocal_commit(),
        "machine": machine(),
        "load_average": [round(load, 2) for load in os.getloadavg()],
    }


def report(results: dict[str, Any], path: str | Path | None = None, quiet: bool = False) -> None:
    """Print the results as JSON with their :func:`provenance`; also write it to ``path`` unless it is
    None or ``-`` (see :func:`add_json_argument`)."""
    text = json.dumps({**provenance(), **results}, indent=2)
    if path is not None and str(path) != "-":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text + "\n")
    if not quiet:
        print(text)


def train_small(
    train_json: Path, val_json: Path, out: Path, precision: str, seed: int, *schedule: str
) -> dict[str, Any]:
    """``gfocal train`` with the CPU benchmarks' recipe (``paper-small``) at gfl_small's own 320 px; ``schedule`` sets the length
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
        "paper-small",
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
