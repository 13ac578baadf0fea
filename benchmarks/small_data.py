"""Small photo-like datasets: gfocal recipes against ultralytics YOLOv8n from scratch, at equal CPU time (issue #21).

    pip install scikit-image                       # to write the datasets (benchmark requirement only)
    python3 -m venv /work/yolo-venv && /work/yolo-venv/bin/pip install ultralytics   # the peer, in its own venv
    python benchmarks/small_data.py --minutes 5 --seeds 0 1 2 [--datasets coins cells] \\
        [--variants today default yolov8n] [--data-root runs/small_data/data] [--work runs/small_data] \\
        [--json docs/results/small_data_screen.json] [--epochs N]

For each dataset x variant x seed, one after another (each run has the
machine's cores to itself): a gfocal variant runs ``gfocal train --data
train.json --val-data val.json --time-budget MINUTES --seed S <variant
args>`` and then ``gfocal eval`` of its final weights (``model.safetensors``)
on the test split; the peer
``yolov8n`` runs ``benchmarks/yolo_peer.py`` under the yolo venv's python and
its last.pt detections are scored here by the same code as gfocal's
(``gfocal.engine.evaluate.evaluate_detections``). The val split may steer
a recipe (checkpoints, schedule); AP is on the test split, which none sees.

``--epochs N`` screens recipes at equal *steps* instead of equal time: each
gfocal run trains exactly N epochs (the budget is then only a cap) and is
evaluated once, at the end. On a machine shared with other work, a
time-budgeted run's steps depend on the load; a fixed-step run's result does
not, so the pieces of a recipe can be compared there. It measures what a piece
does per step, not what it costs per step: the JSON keeps each run's training
seconds, and the peer (which has no such mode) is refused.

The datasets (``benchmarks/small_data_sets.py``, cells in ``small_data_cells.py``) are written under
``--data-root`` when missing. Prints JSON (every run, and mean/std per dataset
x variant) to stdout, also to ``--json`` (rewritten after each run, with
``"complete": false`` until the end), and a markdown table to stderr; the
children's output goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from common import add_json_argument, report

SYNTHETIC = ("coins", "cells")  # benchmarks/small_data_sets.py
REAL = ("trees", "trees-val")  # benchmarks/real_data.py: real photographs; trees-val is the split for choices
DATASETS = SYNTHETIC + REAL
PEER = "yolov8n"
# Extra ``gfocal train`` arguments per variant; PEER is ultralytics' YOLOv8n instead.
VARIANTS: dict[str, list[str]] = {
    # What a user got before the small-data recipe: the paper's recipe on the small model, 300 epochs capped by the budget.
    "today": ["--recipe", "paper", "--model", "gfl_small", "--epochs", "300"],
    "default": [],  # gfocal's default recipe, filling the budget (gfl_nano at 416 px on a CPU)
    # The default before gfl_nano: gfl_small at 320 px, otherwise the same recipe.
    "small": ["--model", "gfl_small"],
    # One change each to the default, to measure what each piece contributes.
    "no_mosaic": ["--set", "mosaic=0"],
    "no_zoom": ["--set", "scale_range=null"],
    "no_color": ["--set", "photometric=false"],
    "no_ema": ["--set", "ema=false"],
    "sgd": ["--set", "optimizer=sgd", "--set", "lr=0.01", "--set", "weight_decay=1e-4"],
    "size_416": ["--image-size", "416"],
    "mosaic_1": ["--set", "mosaic=1.0"],
    # The default model named explicitly (so a run stays what it was if the default changes).
    "nano": ["--model", "gfl_nano"],
    "nano_b8": ["--model", "gfl_nano", "--batch-size", "8"],
    PEER: [],
}
METRICS = ("AP", "AP50", "APs", "APm")
HERE = Path(__file__).resolve().parent


def _run(command: list[str], capture: bool = False) -> subprocess.CompletedProcess[str]:
    print(f"$ {shlex.join(command)}", file=sys.stderr, flush=True)
    return subprocess.run(command, check=True, text=True, stdout=subprocess.PIPE if capture else sys.stderr)


def run_gfocal(split: dict[str, Path], run_dir: Path, minutes: float, seed: int, extra: list[str]) -> dict[str, Any]:
    """Train, then evaluate the final weights on the test split."""
    gfocal = [sys.executable, "-m", "gfocal"]
    started = time.perf_counter()
    _run(
        [
            *gfocal,
            "train",
            "--data",
            str(split["train"]),
            "--val-data",
            str(split["val"]),
            "--out",
            str(run_dir),
            "--time-budget",
            str(minutes),
            "--seed",
            str(seed),
            "--overwrite",
            *extra,
        ]
    )
    train_seconds = time.perf_counter() - started
    weights = run_dir / "model.safetensors"  # the final weights (model_best.safetensors was picked on val)
    _run(
        [
            *gfocal,
            "eval",
            "--weights",
            str(weights),
            "--data",
            str(split["test"]),
            "--out",
            str(run_dir / "test_eval.json"),
        ]
    )
    evaluation = json.loads((run_dir / "test_eval.json").read_text())
    last = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()][-1]
    batch_size = yaml.safe_load((run_dir / "config.yaml").read_text())["batch_size"]
    return {
        "weights": weights.name,
        "train_seconds": round(train_seconds, 1),
        "iterations": last["iteration"],
        **{m: evaluation[m] for m in METRICS},
        "epochs": last["epoch"],
        "batch_size": batch_size,
    }


def score(test_json: Path, detections: dict[str, dict[str, list[Any]]]) -> dict[str, Any]:
    """gfocal's COCO metrics of detections keyed by image ``file_name`` (boxes xyxy in image pixels)."""
    from gfocal.data import load_dataset
    from gfocal.engine.evaluate import evaluate_detections

    records = load_dataset(test_json)
    index = {image.file_name: i for i, image in enumerate(records.images)}
    return evaluate_detections(records, {index[name]: d for name, d in detections.items()})


def run_peer(split: dict[str, Path], run_dir: Path, minutes: float, seed: int, python: str) -> dict[str, Any]:
    """YOLOv8n from scratch (benchmarks/yolo_peer.py in its own venv), its last.pt and best.pt scored on test."""
    out = _run(
        [
            python,
            str(HERE / "yolo_peer.py"),
            "--train",
            str(split["train"]),
            "--val",
            str(split["val"]),
            "--test",
            str(split["test"]),
            "--work",
            str(run_dir),
            "--minutes",
            str(minutes),
            "--seed",
            str(seed),
        ],
        capture=True,
    )
    peer = json.loads(out.stdout)
    scores = {name: score(split["test"], detections) for name, detections in peer["detections"].items()}
    return {
        "weights": "last.pt",
        "train_seconds": round(peer["train_seconds"], 1),
        "iterations": peer["batches"],
        **{m: scores["last"][m] for m in METRICS},
        "best_pt": {m: scores["best"][m] for m in METRICS} if "best" in scores else None,
        "epochs": peer["epochs"],
        "batch_size": 16,
        "torch_threads": peer["torch_threads"],
        "ultralytics": peer["ultralytics"],
        "network_attempts": peer["network_attempts"],
    }


def fixed_steps_args(epochs: int | None) -> list[str]:
    """Extra ``gfocal train`` arguments for a run of exactly ``epochs`` epochs, evaluated only at the end."""
    # eval_share=0: a budgeted run evaluates by the clock, which would tie what runs to the machine's load.
    return [] if epochs is None else ["--epochs", str(epochs), "--set", "eval_interval=0", "--set", "eval_share=0"]


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation of each metric per dataset x variant (failed runs left out, counted)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["dataset"], run["variant"]), []).append(run)
    rows = []
    for (dataset, variant), group in groups.items():
        done = [r for r in group if "error" not in r]
        row: dict[str, Any] = {
            "dataset": dataset,
            "variant": variant,
            "runs": len(done),
            "failed": len(group) - len(done),
        }
        for key in (*METRICS, "iterations", "epochs", "train_seconds"):
            values = [r[key] for r in done]
            row[key] = (
                {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}
                if values
                else None
            )
        rows.append(row)
    return rows


def markdown(summary: list[dict[str, Any]], minutes: float) -> str:
    def cell(value: dict[str, float] | None, scale: float = 100.0, digits: int = 1) -> str:
        return "failed" if value is None else f"{value['mean'] * scale:.{digits}f} ± {value['std'] * scale:.{digits}f}"

    lines = [
        f"{minutes:g} min per run; AP on the test split, mean ± std over seeds",
        "| dataset | variant | runs | AP | AP50 | APs | iterations | epochs | train s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['dataset']} | {r['variant']} | {r['runs']}"
        + (f" (+{r['failed']} failed)" if r["failed"] else "")
        + f" | {cell(r['AP'])} | {cell(r['AP50'])} | {cell(r['APs'])} | {cell(r['iterations'], 1, 0)} | {cell(r['epochs'], 1, 1)}"
        + f" | {cell(r['train_seconds'], 1, 0)} |"
        for r in summary
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=[*SYNTHETIC, "trees"], choices=DATASETS)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--minutes", type=float, default=5.0, help="training time budget of each run")
    parser.add_argument("--data-root", type=Path, default=Path("runs/small_data/data"))
    parser.add_argument("--work", type=Path, default=Path("runs/small_data"), help="run folders")
    add_json_argument(parser, "small_data")
    parser.add_argument("--yolo-python", default="/work/yolo-venv/bin/python", help="python of the ultralytics venv")
    parser.add_argument(
        "--epochs", type=int, help="gfocal runs train exactly this many epochs (equal steps; --minutes is a cap)"
    )
    args = parser.parse_args()
    if args.epochs is not None and PEER in args.variants:
        parser.error(f"--epochs compares gfocal recipes at equal steps; {PEER} has no such mode")
    runs: list[dict[str, Any]] = []
    for dataset in args.datasets:
        if not (args.data_root / dataset / "test.json").is_file():
            if dataset in REAL:
                from real_data import write_trees

                write_trees(args.data_root)
            else:
                from small_data_sets import write_dataset  # needs scikit-image

                write_dataset(args.data_root, dataset)
        split = {s: args.data_root / dataset / f"{s}.json" for s in ("train", "val", "test")}
        for variant in args.variants:
            for seed in args.seeds:
                run_dir = args.work / dataset / variant / f"seed{seed}"
                extra = VARIANTS[variant] + fixed_steps_args(args.epochs)
                run: dict[str, Any] = {
                    "dataset": dataset,
                    "variant": variant,
                    "seed": seed,
                    "minutes": args.minutes,
                    "args": extra if variant != PEER else ["benchmarks/yolo_peer.py"],
                }
                try:
                    run |= (
                        run_peer(split, run_dir, args.minutes, seed, args.yolo_python)
                        if variant == PEER
                        else run_gfocal(split, run_dir, args.minutes, seed, extra)
                    )
                except (subprocess.CalledProcessError, OSError, StopIteration, KeyError, ValueError) as exc:
                    run["error"] = repr(exc)  # a screen goes on past one broken variant
                runs.append(run)
                print(json.dumps(run), file=sys.stderr, flush=True)
                if args.json:  # a screen stopped part-way still leaves its runs, with their provenance
                    report(
                        {"complete": False, "minutes": args.minutes, "epochs": args.epochs, "runs": runs},
                        args.json,
                        quiet=True,
                    )
    summary = summarise(runs)
    print(markdown(summary, args.minutes), file=sys.stderr)
    report(
        {
            "complete": True,
            "minutes": args.minutes,
            "epochs": args.epochs,
            "data_root": str(args.data_root),
            "summary": summary,
            "runs": runs,
        },
        args.json,
    )


if __name__ == "__main__":
    main()
