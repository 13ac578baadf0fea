"""The docs' result tables, generated from the raw benchmark JSON under ``docs/results/``.

    python benchmarks/tables.py            # print every table
    python benchmarks/tables.py --write    # rewrite the generated blocks in README.md and docs/*.md
    python benchmarks/tables.py --check    # exit 1 when a block differs from what the JSON gives (a test runs this)

A generated block in a markdown file sits between ``<!-- table: NAME -->`` and
``<!-- end table -->``; everything between the two lines is this script's, so
a figure in a table can always be traced to a committed run (and the variant table to
:data:`gfocal.models.variants.VARIANTS`, the one list of the variants). Each table names
its source files and which runs of them it takes (a file may hold runs that
belong elsewhere, e.g. a variant later renamed), and states the machine and
commit the runs carry. The renderers of other pages live in ``tables_speed.py``,
``tables_ablation.py``, ``tables_localisation.py``, ``tables_levers.py`` and ``tables_tools.py``; ``results.py`` reads the files.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from results import mean_std
from tables_ablation import ablation_table, lengths_table, seed_differences_table
from tables_levers import lever_seeds_table, lever_table
from tables_localisation import localisation_table, seeds_table
from tables_speed import goals_table, loader_speed_table, logging_cost_table, speed_table, zoo_speed_table
from tables_tools import (
    active_learning_table,
    auroc_table,
    calibration_table,
    fusion_table,
    merge_analysis_table,
    place_table,
    real_tiling_table,
    tiling_table,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
DOCUMENTS = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
BLOCK = re.compile(r"(<!-- table: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- end table -->)", re.DOTALL)


@dataclass(frozen=True)
class Source:
    """Runs taken from one results file: those of ``variants`` (all when empty), renamed by ``rename``.

    ``provenance`` = (cpu, commit) for a file written before the benchmarks recorded their own (its
    ``annotated_after_the_run`` says which).
    """

    file: str
    variants: tuple[str, ...] = ()
    rename: dict[str, str] = field(default_factory=dict)
    provenance: tuple[str, str] | None = None

    def runs(self, results: Path) -> list[dict[str, Any]]:
        data = json.loads((results / self.file).read_text())
        machine, commit = self.provenance or (data["machine"]["cpu"], data["gfocal_commit"][:7])
        taken = []
        for run in data["runs"]:
            if "error" in run or (self.variants and run["variant"] not in self.variants):
                continue
            variant = self.rename.get(run["variant"], run["variant"])
            taken.append({**run, "variant": variant, "source": self.file, "cpu": machine, "commit": commit})
        return taken


def load_runs(sources: list[Source], results: Path) -> list[dict[str, Any]]:
    return [run for source in sources for run in source.runs(results)]


def groups(runs: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Runs by (dataset, variant), in the order first seen, each group sorted by seed."""
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in runs:
        grouped.setdefault((run["dataset"], run["variant"]), []).append(run)
    return {key: sorted(group, key=lambda r: r["seed"]) for key, group in grouped.items()}


def per_seed(group: list[dict[str, Any]], key: str, scale: float = 100.0) -> str:
    return ", ".join(f"{run[key] * scale:.1f}" if scale != 1 else str(run[key]) for run in group)


def comparison_table(sources: list[Source], labels: dict[str, str], results: Path) -> str:
    """One row per dataset x variant: seeds, AP metrics as mean ± std, AP and iterations per seed."""
    lines = [
        "| dataset | run | seeds | AP | AP50 | AP small | AP medium | AP per seed | iterations | machine, commit |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (dataset, variant), group in groups(load_runs(sources, results)).items():
        provenance = sorted({f"{r['cpu']}, {r['commit']}" for r in group})
        lines.append(
            f"| {dataset} | {labels.get(variant, variant)} | {', '.join(str(r['seed']) for r in group)} | "
            + " | ".join(mean_std([r[m] for r in group]) for m in ("AP", "AP50", "APs", "APm"))
            + f" | {per_seed(group, 'AP')} | {per_seed(group, 'iterations', 1)} | {'; '.join(provenance)} |"
        )
    return "\n".join(lines)


def paired_table(
    sources: list[Source],
    reference: str,
    labels: dict[str, str],
    results: Path,
    seconds: str = "train s (machine shared)",
) -> str:
    """Each variant against ``reference`` on the same seeds: AP, and the per-seed difference in AP; the
    mean training seconds under the heading ``seconds``."""
    grouped = groups(load_runs(sources, results))
    lines = [
        f"| dataset | variant | seeds | AP | AP50 | AP small | AP − {reference} per seed | mean AP − {reference} | {seconds} |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (dataset, variant), group in grouped.items():
        base = {r["seed"]: r["AP"] for r in grouped.get((dataset, reference), [])}
        paired = [r for r in group if r["seed"] in base]
        differences = [r["AP"] - base[r["seed"]] for r in paired]
        lines.append(
            f"| {dataset} | {labels.get(variant, variant)} | {', '.join(str(r['seed']) for r in group)} | "
            + " | ".join(mean_std([r[m] for r in group]) for m in ("AP", "AP50", "APs"))
            + f" | {', '.join(f'{d * 100:+.1f}' for d in differences) or '–'}"
            + f" | {f'{statistics.fmean(differences) * 100:+.1f}' if differences else '–'}"
            + f" | {statistics.fmean(r['train_seconds'] for r in group):.0f} |"
        )
    return "\n".join(lines)


def demo_steps_table(files: dict[str, str], results: Path) -> str:
    """The ``paper-small`` recipe (the demo's before #28) at a fixed number of steps, one row per checkout."""
    lines = [
        "| code | commit | steps | AP | AP50 | seconds (machine shared) | machine |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, file in files.items():
        data = json.loads((results / file).read_text())
        lines.append(
            f"| {label} | {(data['checkout_commit'] or '?')[:7]} | {data['iterations']} | {data['AP'] * 100:.1f} | "
            f"{data['AP50'] * 100:.1f} | {data['seconds']:.0f} | {data['machine']['cpu']}, torch {data['machine']['torch']} |"
        )
    return "\n".join(lines)


def step_pairs_table(rounds: list[tuple[str, str]], results: Path) -> str:
    """Training-step times of two checkouts run at once (one thread each), round by round, and their ratio."""
    lines = [
        "| round | before: commit | s / step (wall) | CPU s / step | after: commit | s / step (wall) | CPU s / step "
        "| after / before (wall) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    ratios = []
    for number, (before_file, after_file) in enumerate(rounds, 1):
        before, after = (json.loads((results / f).read_text()) for f in (before_file, after_file))
        ratios.append(after["median_wall_s"] / before["median_wall_s"])
        lines.append(
            f"| {number} | "
            + " | ".join(
                f"{d['checkout_commit'][:7]} | {d['median_wall_s']:.2f} | {d['median_cpu_s']:.2f}"
                for d in (before, after)
            )
            + f" | {ratios[-1]:.2f} |"
        )
    lines.append(f"| median | | | | | | | {statistics.median(ratios):.2f} |")
    return "\n".join(lines)


def variants_table(results: Path) -> str:
    """README's variant table: each variant's fields, from the variants' own table and ModelConfig's defaults."""
    from gfocal.models.config import ModelConfig
    from gfocal.models.variants import VARIANT_FIELDS, VARIANTS

    defaults = {f.name: f.default for f in dataclasses.fields(ModelConfig) if f.name in VARIANT_FIELDS}
    lines = ["| variant | id | " + " | ".join(f"`{f}`" for f in VARIANT_FIELDS) + " | other options |"]
    lines.append("|---" * (len(VARIANT_FIELDS) + 3) + "|")
    for key, variant in VARIANTS.items():
        values = {**defaults, **variant.overrides}
        if values["classification"] != "qfl":
            values["quality_label"] = None  # only the joint score (QFL) has a quality label
        cells = ["" if values[f] is None else f"`{values[f]!r}`".replace("'", '"') for f in VARIANT_FIELDS]
        others = ", ".join(f"`{k}={v!r}`" for k, v in variant.overrides.items() if k not in VARIANT_FIELDS)
        lines.append(f"| {variant.name} | `{key}` | " + " | ".join(cells) + f" | {others.replace(chr(39), chr(34))} |")
    return "\n".join(lines)


FINAL_LABELS = {
    "today": "before (paper recipe, gfl_small, flip only)",
    "default": "**gfocal default (gfl_nano)**",
    "yolov8n": "YOLOv8n from scratch",
}
PIECE_LABELS = {
    "default": "default (all pieces)",
    "no_mosaic": "without mosaic",
    "no_zoom": "without zoom-and-crop",
    "no_color": "without colour jitter",
    "no_ema": "without EMA",
    "sgd": "SGD instead of AdamW",
}

# benchmarks/cpu.py on this project's machine, one run per config (the commands: docs/performance.md).
CPU_FILES = {"small": "cpu_small-intel-amx.json", "r50": "cpu_r50-intel-amx.json"}
# The ablation's files predate the machine record in the benchmarks' JSON (their "annotated_after_the_run" says so).
ABLATION_RUN = (
    "written before the benchmarks recorded their machine: the 2-core Intel Xeon with AMX and AVX512-BF16 of "
    "November 2026, torch 2.15, bf16 (as docs/ablation.md stated then); gfocal d814d39"
)

# benchmarks/ablation.py at 750 iterations, run in two parts (the baseline, QFL only, DFL only and GFL; then
# GFLv2 and GFL with centerness labels), so that the first part's results were safe before the second began.
ABLATION_750 = ("ablation_750it-intel-amx.json", "ablation_750it_quality-intel-amx.json")

MERGE_LABELS = {
    "nms": "NMS",
    "dist_tol0.25": "dist as first built (edges within 25%, weighted mean)",
    "dist_tol0.25_iou": "+ IoU > 0.5 also joins",
    "dist_tol0.25_iou_best": "+ IoU rule, most certain edge",
    "dist_tol0.25_iou_best_score": "+ IoU rule, best-scoring uncut edge",
    "dist_tol0.35_iou_best": "+ IoU rule, most certain edge, edges within 35%",
    "dist_tol0.5_iou_best": "**dist now: IoU rule, most certain edge, edges within 50%**",
}

# benchmarks/tiling_real.py's merges on a whole real photograph.
REAL_MERGE_LABELS = {
    "nms": "tiles + NMS",
    "dist": "**tiles + dist now: IoU rule, edges within 25%, weighted mean**",
    "dist_tol0.5_most_certain": "tiles + dist before: IoU rule, edges within 50%, most certain edge",
    "dist_tol0.5_mean": "tiles + dist, edges within 50%, weighted mean",
    "dist_tol0.25_most_certain": "tiles + dist, edges within 25%, most certain edge",
    "dist_tol0.25_mean": "tiles + dist, edges within 25%, weighted mean",
    "dist_tol0_most_certain": "tiles + dist, IoU rule only, most certain edge",
    "dist_tol0_mean": "tiles + dist, IoU rule only, weighted mean",
    "dist_tol0_best_score": "tiles + dist, IoU rule only, best-scoring uncut edge",
}

TRANSFER_LABELS = {
    "finetune": "fine-tuned, finetune recipe (lr 0.001)",
    "finetune_default_recipe": "**fine-tuned, default recipe (lr 0.002)**",
    "scratch": "from scratch (default recipe)",
    "finetune_mmdet": "fine-tuned from the mmdetection checkpoint (finetune recipe)",
}

TABLES: dict[str, Callable[[Path], str]] = {
    # 20 minutes each on the 2-core AMD EPYC (AVX2, float32); gfl_nano was named "nano" in the first runs.
    "small-data-final": lambda results: comparison_table(
        [
            Source("small_data_20min_final_coins_today_s0.json"),
            Source("small_data_20min_nano.json", rename={"nano": "default"}),
            Source("small_data_20min_final_coins_default_s1.json"),
            Source("small_data_20min_final_coins_default_s2.json"),
            # Its "default" was gfl_small, the default before gfl_nano.
            Source("small_data_20min.json", variants=("yolov8n",), provenance=("AMD EPYC", "2e1ecef")),
            Source("small_data_20min_final_coins_yolo_s1.json"),
            Source("small_data_20min_final_coins_yolo_s2.json"),
            Source("small_data_20min_cells.json", rename={"nano": "default"}),
        ],
        FINAL_LABELS,
        results,
    ),
    # 20 minutes each on session 7's 2-core Intel Xeon (AMX, bf16), frozen checkout bb7abe2.
    "small-data-bf16": lambda results: comparison_table(
        [
            Source("small_data_20min_bf16_today_coins.json"),
            Source("small_data_20min_bf16_coins_s0.json"),
            Source("small_data_20min_bf16_today_cells.json"),
        ],
        FINAL_LABELS,
        results,
    ),
    "small-data-before-steps": lambda results: comparison_table(
        [Source("small_data_today_steps_cells.json")], FINAL_LABELS, results
    ),
    "small-data-pieces": lambda results: paired_table(
        [
            Source("small_data_screen_steps_default_s0.json"),
            Source("small_data_screen_steps_s0.json"),
            Source("small_data_screen_steps_s1.json"),
        ],
        "default",
        PIECE_LABELS,
        results,
    ),
    # The same pieces at the length of a 20-minute bf16 run (660 steps), the two seeds' runs side by side.
    "small-data-pieces-660": lambda results: paired_table(
        [Source("small_data_zoom_steps_s0.json"), Source("small_data_zoom_steps_s1.json")],
        "default",
        PIECE_LABELS,
        results,
        seconds="train s (two runs at once, one thread each)",
    ),
    # benchmarks/transfer.py: one run of the whole benchmark, the machine to itself.
    "transfer": lambda results: paired_table(
        [Source("transfer-intel-amx.json")], "scratch", TRANSFER_LABELS, results, seconds="train s"
    ),
    "step-pairs": lambda results: step_pairs_table(
        [(f"step_pair_before_21_{n}.json", f"step_pair_after_21_{n}.json") for n in (1, 2, 3)], results
    ),
    "tiling-110it": lambda results: tiling_table("tiling.json", results),
    "tiling-merges": lambda results: merge_analysis_table(
        {
            "110 it, val": "tiling_analysis_110it_val.json",
            "110 it, **test**": "tiling_analysis_110it_test.json",
            "198 it, val": "tiling_analysis_198it_val.json",
            "198 it, **test**": "tiling_analysis_198it_test.json",
        },
        MERGE_LABELS,
        results,
    ),
    "tiling-places": lambda results: place_table(
        "tiling_analysis_110it_test.json", ("nms", "dist_tol0.25", "dist_tol0.5_iou_best"), MERGE_LABELS, results
    ),
    "tiling-real": lambda results: real_tiling_table(
        {
            "validation region, trees-val model": "tiling_real_val.json",
            "**test band**, trees model": "tiling_real_test.json",
        },
        REAL_MERGE_LABELS,
        results,
    ),
    "variants": variants_table,
    "demo-steps": lambda results: demo_steps_table(
        {"before #21": "demo_steps_before_21.json", "after #21": "demo_steps_after_21.json"}, results
    ),
    "cpu-speed": lambda results: speed_table(CPU_FILES, results),
    "cpu-goals": lambda results: goals_table(CPU_FILES["r50"], "r50", results),
    "cpu-zoo": lambda results: zoo_speed_table("cpu_zoo-amd-avx2.json", results),
    "ablation-750": lambda results: ablation_table(ABLATION_750, results),
    "ablation-750-seeds": lambda results: seed_differences_table(
        ABLATION_750,
        [
            ("gfl", "atss-anchor"),
            ("dfl", "atss-anchor"),
            ("qfl", "atss-anchor"),
            ("gfl", "dfl"),
            ("gfl", "qfl"),
            ("gfl-centerness", "gfl"),
            ("gflv2", "gfl"),
        ],
        results,
    ),
    "ablation": lambda results: ablation_table("ablation_results.json", results, ABLATION_RUN),
    "ablation-seeds": lambda results: seed_differences_table(
        "ablation_results.json",
        [("dfl", "atss"), ("qfl", "atss"), ("gfl", "dfl"), ("reg_max4", "gfl")],
        results,
        ABLATION_RUN,
    ),
    "ablation-longer": lambda results: lengths_table(
        {
            "AP at 250 iterations (seed 0)": "ablation_results.json",
            "AP at 750 iterations (seed 0)": "ablation_longer_results.json",
        },
        0,
        results,
        ABLATION_RUN,
    ),
    "uncertainty-active-learning": lambda results: active_learning_table("uncertainty.json", results),
    "uncertainty-fusion": lambda results: fusion_table("uncertainty.json", results),
    "uncertainty-calibration": lambda results: calibration_table("uncertainty.json", results),
    "ambiguity-auroc": lambda results: auroc_table("ambiguity_auroc-intel-amx.json", results),
    "ambiguity-auroc-3000": lambda results: auroc_table("ambiguity_auroc_3000it-intel-amx.json", results),
    # benchmarks/lever_screen.py on trees-val (#28): weight averages and NMS from one run each.
    "levers-trees-val": lambda results: lever_table(
        {
            "default": "lever_screen_default_s0-amd-avx2.json",
            "DGQP": "lever_screen_dgqp_s0-amd-avx2.json",
            "no flips": "lever_screen_noflip_s0-amd-avx2.json",
            "GIoU 5, DFL 0.75": "lever_screen_boxheavy_s0-amd-avx2.json",
            "reg_max 8": "lever_screen_regmax8_s0-amd-avx2.json",
            "task-aligned assignment": "lever_screen_tal_s0-amd-avx2.json",
            "mosaic 1.0": "lever_screen_mosaic1_s0-amd-avx2.json",
            "zoom 0.5-2.0": "lever_screen_zoomwide_s0-amd-avx2.json",
            "no zoom-and-crop": "lever_screen_nozoom_s0-amd-avx2.json",
        },
        ("default", "raw", 0.6),
        results,
    ),
    # The same at the hidden check's length (700 steps), with box voting scored on the same weights.
    "levers-700": lambda results: lever_table(
        {
            "default, 700 steps": "lever_screen_default700_s0-amd-avx2.json",
            "default, 700 steps, box voting": "box_voting_default700_s0-amd-avx2.json",
        },
        ("default, 700 steps", "raw", 0.6),
        results,
    ),
    # trees-shift (another band and another site, cut from the training data): the split for choices since #28's
    # 700-step runs showed trees-val flattering gfocal.
    "levers-trees-shift": lambda results: lever_table(
        {
            "default, 700 steps": "lever_screen_shift700_s0-amd-avx2.json",
            "YOLO-style assignment and loss weights, 700 steps": "lever_screen_shift700_yolostyle_s0-amd-avx2.json",
            "default, 700 steps, seed 1": "lever_screen_shift700_s1-amd-avx2.json",
            "stronger colour jitter and 10% grey, 700 steps": "lever_screen_shift700_colour_s0-amd-avx2.json",
        },
        ("default, 700 steps", "raw", 0.6),
        results,
    ),
    "levers-dgqp-seeds": lambda results: lever_seeds_table(
        {
            "default": [f"lever_screen_default_s{seed}-amd-avx2.json" for seed in range(3)],
            "DGQP": [f"lever_screen_dgqp_s{seed}-amd-avx2.json" for seed in range(3)],
        },
        "default",
        results,
    ),
    "levers-tal-seeds": lambda results: lever_seeds_table(
        {
            "default": [f"lever_screen_default_s{seed}-amd-avx2.json" for seed in range(3)],
            "task-aligned": [f"lever_screen_tal_s{seed}-amd-avx2.json" for seed in range(3)],
        },
        "default",
        results,
    ),
    "logging-cost": lambda results: logging_cost_table("logging_cost-amd-avx2.json", results),
    "loader-speed": lambda results: loader_speed_table("loader_speed-amd-avx2.json", results),
    # benchmarks/localisation.py, gfocal and YOLOv8n in one file per dataset (docs/localisation.md has the commands).
    # The trees test at 700 steps, gfocal's default against YOLOv8n, one localisation file per seed.
    "trees-700-seeds": lambda results: seeds_table(
        {
            0: "localisation_trees_700-amd-avx2.json",
            1: "localisation_trees_700_s1-amd-avx2.json",
            2: "localisation_trees_700_s2-amd-avx2.json",
        },
        results,
    ),
    "localisation": lambda results: localisation_table(
        {
            "trees-val": "localisation_trees_val.json",
            "trees-val, levers and YOLOv8n at 300 steps": "localisation_trees_val_levers-amd-avx2.json",
            "trees-val, default and YOLOv8n at 700 steps": "localisation_trees_val_700-amd-avx2.json",
            "trees, default and YOLOv8n at 700 steps": "localisation_trees_700-amd-avx2.json",
            "trees, default and YOLOv8n at 700 steps, seed 1": "localisation_trees_700_s1-amd-avx2.json",
            "trees, default and YOLOv8n at 700 steps, seed 2": "localisation_trees_700_s2-amd-avx2.json",
            "trees-shift, 700 steps": "localisation_trees_shift_700-amd-avx2.json",
            "trees-shift's band, 700 steps": "localisation_trees_shift_band_700-amd-avx2.json",
            "trees-shift's other site, 700 steps": "localisation_trees_shift_site_700-amd-avx2.json",
            "trees-shift, default seeds 0 and 1 and the colour lever": "localisation_trees_shift_levers-amd-avx2.json",
            "trees-shift's band, the same": "localisation_trees_shift_band_levers-amd-avx2.json",
            "trees-shift's other site, the same": "localisation_trees_shift_site_levers-amd-avx2.json",
            "trees": "localisation_trees.json",
        },
        results,
    ),
}


def render_document(text: str, results: Path) -> str:
    """``text`` with every generated block rewritten from the results; an unknown table name is an error."""

    def fill(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in TABLES:
            raise KeyError(f"unknown generated table {name!r}; known: {', '.join(TABLES)}")
        return f"{match.group(1)}{TABLES[name](results)}\n{match.group(4)}"

    return BLOCK.sub(fill, text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="rewrite the generated blocks in place")
    mode.add_argument("--check", action="store_true", help="exit 1 if a generated block is out of date")
    args = parser.parse_args()
    if not (args.write or args.check):
        for name, build in TABLES.items():
            try:
                print(f"## {name}\n\n{build(RESULTS)}\n")
            except FileNotFoundError as missing:  # a table ready for runs not made yet (e.g. on this machine)
                print(f"## {name}\n\nnot measured yet: no {Path(missing.filename).name}\n")
        return 0
    stale = []
    for path in DOCUMENTS:
        text = path.read_text()
        rendered = render_document(text, RESULTS)
        if rendered != text:
            stale.append(path.relative_to(ROOT))
            if args.write:
                path.write_text(rendered)
    if args.check and stale:
        print(f"out of date (run python benchmarks/tables.py --write): {', '.join(map(str, stale))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
