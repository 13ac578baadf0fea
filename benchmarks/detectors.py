"""GFL on each one-stage detector (the paper's cross-detector table, issue #29) at CPU scale.

    python benchmarks/detectors.py --epochs 60 --seeds 0 1 2 [--datasets trees-val synthetic] \\
        [--detectors retinanet fcos atss tood] [--data-root runs/small_data/data] [--work runs/detectors] \\
        [--set key=value ...] [--json docs/results/detectors.json] [--markdown docs/results/detectors.md]

For each dataset x detector (:data:`gfocal.models.variants.DETECTORS`) x seed, the detector trains twice,
without and with GFL (``gfocal train --variant ID``: ``retinanet`` / ``retinanet-gfl``, ``fcos`` / ``fcos-gfl``,
``atss-anchor`` / ``gfl``, ``tood`` / ``tood-gfl``), with the same data, recipe (``--recipe``, gfocal's default
small-data recipe unless told), model (``--model``), number of epochs and seed; a run is not evaluated while it
trains, and its final weights (``model.safetensors``) are scored on the test split, which chooses nothing.

Datasets: ``trees-val`` is the real development set's split for choices (``benchmarks/real_data.py``, written
under ``--data-root`` when missing; scored on its held-out region); ``synthetic`` is gfocal's synthetic
``hard`` preset (``--num-train`` / ``--num-val`` images, scored on its val split, which nothing chooses on).

Writes every run and, per dataset x detector, the mean ± std AP of both forms and the per-seed gain of GFL
(GFL's AP minus the baseline's, same seed) to ``--json`` (rewritten after each run, ``"complete": false``
until the end), and the markdown table to ``--markdown`` and stderr.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from common import add_json_argument, report
from small_data import METRICS, summarise

from gfocal.engine import load_config, train
from gfocal.engine.evaluate import evaluate_weights
from gfocal.models.variants import DETECTORS

DATASETS = ("trees-val", "synthetic")


def dataset_splits(name: str, root: Path, num_train: int, num_val: int) -> dict[str, Path]:
    """The train / val / test COCO files of a dataset under ``root``, written there when missing."""
    if name == "synthetic":
        from gfocal.data.synthetic import make_synthetic_splits

        folder = root / f"synthetic-hard-{num_train}-{num_val}"
        train_json, val_json = folder / "train.json", folder / "val.json"
        if not (train_json.is_file() and val_json.is_file()):
            train_json, val_json = make_synthetic_splits(folder, "hard", 0, num_train, num_val)
        return {"train": train_json, "val": val_json, "test": val_json}
    if not (root / name / "test.json").is_file():
        from real_data import write_trees  # the shared script's cached wheel holds the photographs

        write_trees(root)
    return {split: root / name / f"{split}.json" for split in ("train", "val", "test")}


def train_and_score(
    split: dict[str, Path], variant: str, seed: int, args: argparse.Namespace, run_dir: Path
) -> dict[str, Any]:
    """One run of ``variant``, fixed epochs, without evaluations; its final weights scored on the test split."""
    config = load_config(
        overrides=args.set,
        recipe=args.recipe,
        fields={
            "train_data": str(split["train"]),
            "val_data": "",  # nothing is chosen during a run: the final weights are scored once, below
            "model": args.model,
            "variant": variant,
            "epochs": args.epochs,
            "seed": seed,
            "out_dir": str(run_dir),
        },
    )
    started = time.perf_counter()
    result = train(config)
    train_seconds = time.perf_counter() - started
    metrics = evaluate_weights(result.weights, split["test"])
    return {
        "weights": Path(result.weights).name,
        "train_seconds": round(train_seconds, 1),
        "iterations": result.iterations,
        "epochs": args.epochs,
        **{m: metrics[m] for m in METRICS},
    }


def gains(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per dataset x detector: GFL's AP minus its baseline's, seed by seed, their mean and std, and the seeds
    where GFL is at least the baseline."""
    rows = []
    for dataset in dict.fromkeys(r["dataset"] for r in runs):
        for detector, (base, gfl) in DETECTORS.items():
            ap = {(r["variant"], r["seed"]): r["AP"] for r in runs if r["dataset"] == dataset and "AP" in r}
            seeds = sorted({s for v, s in ap if v == base} & {s for v, s in ap if v == gfl})
            if not seeds:
                continue
            per_seed = {s: ap[gfl, s] - ap[base, s] for s in seeds}
            values = list(per_seed.values())
            rows.append({
                "dataset": dataset,
                "detector": detector,
                "baseline": base,
                "gfl": gfl,
                "gain_per_seed": per_seed,
                "gain": {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0},
                "gfl_not_worse_seeds": sum(v >= 0 for v in values),
                "seeds": len(values),
            })  # fmt: skip
    return rows


def markdown(summary: list[dict[str, Any]], gain_rows: list[dict[str, Any]], epochs: int) -> str:
    """The docs table: each detector's AP without and with GFL (mean ± std over seeds) and GFL's gain."""
    ap = {(r["dataset"], r["variant"]): r["AP"] for r in summary}

    def cell(value: dict[str, float] | None) -> str:
        return "failed" if value is None else f"{100 * value['mean']:.1f} ± {100 * value['std']:.1f}"

    lines = [
        f"{epochs} epochs per run, final weights; AP on the test split, mean ± std over seeds; gain = GFL - baseline, "
        "same seed",
        "| dataset | detector | baseline AP | + GFL AP | gain (AP points) | seeds GFL >= baseline |",
        "|---|---|---|---|---|---|",
    ]
    for row in gain_rows:
        base, gfl = ap.get((row["dataset"], row["baseline"])), ap.get((row["dataset"], row["gfl"]))
        per_seed = ", ".join(f"{100 * v:+.1f}" for v in row["gain_per_seed"].values())
        lines.append(
            f"| {row['dataset']} | {row['detector']} (`{row['baseline']}` / `{row['gfl']}`) | {cell(base)} | "
            f"{cell(gfl)} | {cell(row['gain'])} ({per_seed}) | {row['gfl_not_worse_seeds']} of {row['seeds']} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--detectors", nargs="+", default=list(DETECTORS), choices=list(DETECTORS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, required=True, help="epochs of every run (equal steps)")
    parser.add_argument("--model", default="gfl_nano", help="the backbone and head every detector runs on")
    parser.add_argument("--recipe", default=None, help="a recipe of gfocal.engine.recipes (default: gfocal's)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="TrainConfig overrides")
    parser.add_argument("--num-train", type=int, default=400, help="synthetic training images")
    parser.add_argument("--num-val", type=int, default=100, help="synthetic validation (scoring) images")
    parser.add_argument("--data-root", type=Path, default=Path("runs/small_data/data"))
    parser.add_argument("--work", type=Path, default=Path("runs/detectors"), help="run folders")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table here")
    add_json_argument(parser, "detectors")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    runs: list[dict[str, Any]] = []
    for dataset in args.datasets:
        split = dataset_splits(dataset, args.data_root, args.num_train, args.num_val)
        for detector in args.detectors:
            for variant in DETECTORS[detector]:
                for seed in args.seeds:
                    run: dict[str, Any] = {"dataset": dataset, "detector": detector, "variant": variant, "seed": seed}
                    print(f"{dataset}: {variant}, seed {seed}", file=sys.stderr, flush=True)
                    try:
                        run |= train_and_score(split, variant, seed, args, args.work / dataset / variant / f"s{seed}")
                    except (RuntimeError, ValueError, OSError) as error:
                        run["error"] = repr(error)  # a long screen goes on past one broken run
                    runs.append(run)
                    if args.json:  # a run stopped part-way still leaves its runs, with their provenance
                        report({"complete": False, "epochs": args.epochs, "runs": runs}, args.json, quiet=True)
    summary = summarise(runs)
    gain_rows = gains(runs)
    table = markdown(summary, gain_rows, args.epochs)
    print(table, file=sys.stderr)
    if args.markdown:
        args.markdown.write_text(table + "\n")
    output = {
        "complete": True,
        "epochs": args.epochs,
        "recipe": args.recipe or "default",
        "model": args.model,
        "set": args.set,
        "summary": summary,
        "gains": gain_rows,
        "runs": runs,
    }
    report(output, args.json)
    return output


if __name__ == "__main__":
    main()
