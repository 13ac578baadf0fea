"""Reading the raw benchmark JSON under ``docs/results/`` for the docs' tables: the files, the line that says
where a table's figures come from, and the number formats the tables share."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any


def load(results: Path, name: str) -> dict[str, Any]:
    """The results file ``name`` under ``results``."""
    return json.loads((results / name).read_text())


def machine_summary(machine: dict[str, Any]) -> str:
    """``cpu (what it offers torch), N threads, torch V`` from a ``common.machine()`` record."""
    offers = [machine.get("cpu_capability")]
    if machine.get("cpu_native_bf16"):
        offers.append("native bf16")
    if machine.get("cpu_amx"):
        offers.append("AMX")
    found = ", ".join(offer for offer in offers if offer)
    cpu = machine["cuda"] or machine["cpu"]
    threads = f"{machine['threads']} thread{'s' if machine['threads'] != 1 else ''}"
    return f"{cpu}{f' ({found})' if found else ''}, {threads}, torch {machine['torch']}"


def source_line(name: str, data: dict[str, Any], older: str | None = None) -> str:
    """The line under a table: its results file, and the machine, commit and command the file records;
    ``older`` describes the run instead, for files written before the benchmarks recorded their own
    (``name`` may then list several, comma-separated)."""
    if older is not None:
        files = ", ".join(f"`docs/results/{file}`" for file in name.split(", "))
        return f"Source: {files}, {older}."
    commit = (data.get("gfocal_commit") or "?")[:7]
    load = f" (load average {data['load_average'][1]:.1f} over the last 5 minutes)" if "load_average" in data else ""
    return (
        f"Source: `docs/results/{name}`, measured on {machine_summary(data['machine'])}, "
        f"gfocal {commit}, by `{data['command']}`{load}."
    )


def mean_std(values: list[float], scale: float = 100.0) -> str:
    """``mean ± std`` (sample std) of ``values`` x ``scale`` to one decimal; a single value alone."""
    scaled = [v * scale for v in values]
    if len(scaled) == 1:
        return f"{scaled[0]:.1f}"
    return f"{statistics.fmean(scaled):.1f} ± {statistics.stdev(scaled):.1f}"


def signed(value: float, digits: int = 1) -> str:
    """``+1.2`` / ``−0.4`` (a true minus sign, as the docs' prose writes it)."""
    return f"{value:+.{digits}f}".replace("-", "−")


def duration(milliseconds: float) -> str:
    """``38 ms`` below a second, ``1.97 s`` above."""
    return f"{milliseconds:.0f} ms" if milliseconds < 1000 else f"{milliseconds / 1000:.2f} s"
