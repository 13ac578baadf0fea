"""The CPU speed tables of README.md and docs/performance.md, from ``benchmarks/cpu.py``'s JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from results import duration, load, source_line

# cpu.py's modes, in table order, with their row labels.
MODES = {
    "fp32": "gfocal fp32",
    "fp32_channels_last": "gfocal fp32 + channels_last",
    "bf16": "gfocal bf16",
    "bf16_channels_last": "**gfocal bf16 + channels_last** (`auto` on a CPU with native bf16)",
    "bf16_channels_last_compiled": "gfocal bf16 + channels_last + `--compile`",
    "mmdet_fp32": "mmdetection GFL, fp32",
}
CONFIGS = {"small": "small, 320 x 320", "r50": "R50, 800 x 1216"}
# cpu.py's zoo configs (the paper's larger models), as docs/zoo.md names them.
ZOO_CONFIGS = {
    "r50": "R-50 (`gfl_resnet50_fpn`)",
    "r101": "R-101 (`gfl_resnet101_fpn`)",
    "r101_dcn": "R-101-DCN (`gfl_resnet101_dcn_fpn`)",
    "x101": "X-101-32x4d (`gfl_resnext101_32x4d_fpn`)",
    "x101_dcn": "X-101-32x4d-DCN (`gfl_resnext101_32x4d_dcn_fpn`)",
}
# The fast path's goals against mmdetection: (our mode, timing, label, the highest time ratio that meets it).
GOALS = [
    ("bf16_channels_last", "inference_ms", "inference time, `auto`", 0.35),
    ("fp32_channels_last", "inference_ms", "inference time, fp32 + channels_last", 0.8),
    ("bf16_channels_last", "train_step_batch2_ms", "training step time, `auto` (throughput ≥ 2.5x)", 0.4),
]


def _cell(timings: dict[str, Any] | None, key: str, first_key: str, first_name: str) -> str:
    """A timing, with the first call's seconds where compiling made it differ."""
    if timings is None or key not in timings:
        return "not measured"
    first = f" ({first_name} {timings[first_key]:.0f} s)" if first_key in timings else ""
    return duration(timings[key]) + first


def speed_table(files: dict[str, str], results: Path) -> str:
    """One row per mode, inference and training step per config; ``files`` maps a config to the cpu.py
    output holding it (several configs may share a file)."""
    data = {config: load(results, name) for config, name in files.items()}
    lines = [
        "| | " + " | ".join(f"{CONFIGS[c]}: inference | training step" for c in files) + " |",
        "|---|" + "---|---|" * len(files),
    ]
    for mode, label in MODES.items():
        if not any(mode in data[c][c] for c in files):
            continue
        cells = []
        for config in files:
            timings = data[config][config].get(mode)
            cells += [
                _cell(timings, "inference_ms", "inference_first_call_s", "first call"),
                _cell(timings, "train_step_batch2_ms", "train_first_step_s", "first step"),
            ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    sources = [source_line(name, load(results, name)) for name in dict.fromkeys(files.values())]
    return "\n".join(lines) + "\n\n" + "\n\n".join(sources)


def zoo_speed_table(name: str, results: Path) -> str:
    """One row per zoo model of one cpu.py run, its inference time per mode and mmdetection's (or why not)."""
    data = load(results, name)
    configs = [config for config in ZOO_CONFIGS if config in data]
    modes = [mode for mode in MODES if mode != "mmdet_fp32" and any(mode in data[c] for c in configs)]
    lines = [
        "| inference, one 800 x 1216 image | " + " | ".join(MODES[m] for m in modes) + " | mmdetection GFL, fp32 |",
        "|---|" + "---|" * (len(modes) + 1),
    ]
    for config in configs:
        measured = data[config]
        cells = [_cell(measured.get(mode), "inference_ms", "inference_first_call_s", "first call") for mode in modes]
        mmdet = measured.get("mmdet_fp32")
        if mmdet is None:
            cells.append("not importable in this run")
        else:
            cells.append(
                f"not timed: {mmdet['not_timed']}" if "not_timed" in mmdet else duration(mmdet["inference_ms"])
            )
        lines.append(f"| {ZOO_CONFIGS[config]} | " + " | ".join(cells) + " |")
    return "\n".join([*lines, "", source_line(name, data)])


def goals_table(name: str, config: str, results: Path) -> str:
    """gfocal's time against mmdetection's in the same run, for each goal of the fast path."""
    data = load(results, name)
    measured = data[config]
    if "mmdet_fp32" not in measured:
        return f"mmdetection was not importable in this run.\n\n{source_line(name, data)}"
    lines = ["| time against mmdetection's | goal | measured | gfocal | mmdetection |", "|---|---|---|---|---|"]
    for mode, key, label, goal in GOALS:
        ours, theirs = measured.get(mode, {}).get(key), measured["mmdet_fp32"].get(key)
        if ours is None or theirs is None:
            continue
        ratio = ours / theirs
        mark = "**" if ratio <= goal else ""
        lines.append(f"| {label} | ≤ {goal}x | {mark}{ratio:.2f}x{mark} | {duration(ours)} | {duration(theirs)} |")
    return "\n".join([*lines, "", source_line(name, data)])


def loader_speed_table(name: str, results: Path) -> str:
    """``benchmarks/loader_speed.py``: per checkout, steps per minute and step, data wait and CPU per round."""
    data = load(results, name)
    lines = [
        "| round | checkout | steps | steps per minute | mean step (s) | mean data wait (s) "
        "| data wait at an epoch's start (s) | CPU s per step |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in data["runs"]:
        lines.append(
            f"| {run['round']} | {run['checkout_commit'][:7]} | {run['iterations']} | {run['steps_per_min']:.1f} "
            f"| {run['mean_iter_s']:.2f} | {run['mean_data_s']:.2f} | {run['epoch_start_data_s']:.2f} "
            f"| {run['cpu_s_per_step']:.2f} |"
        )
    return "\n".join([*lines, "", source_line(name, data)])


def logging_cost_table(name: str, results: Path) -> str:
    """``benchmarks/logging_cost.py``: per subscriber, its seconds per training step (and share of the mean
    step) on one run's own events, and what it costs once per run."""
    data = load(results, name)
    lines = [
        "| subscriber | per training step (ms) | share of a step | once per run (s) |",
        "|---|---|---|---|",
    ]
    for row in data["rows"]:
        if "skipped" in row:
            lines.append(f"| {row['subscriber']} | not measured: {row['skipped']} | | |")
            continue
        lines.append(
            f"| {row['subscriber']} | {row['per_step_ms']:.3f} | {row['share_of_step'] * 100:.3f}% "
            f"| {row['once_per_run_s']:.2f} |"
        )
    note = (
        f"{data['steps']} steps (mean {data['mean_step_s']:.2f} s), {data['evaluations']} evaluations, "
        f"log_interval {data['log_interval']}, evaluation every {data['eval_interval']} epoch(s)."
    )
    return "\n".join([*lines, "", note, source_line(name, data)])
