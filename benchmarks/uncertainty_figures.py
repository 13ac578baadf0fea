"""The README's figures of the distribution tools (issue #20), made by the tools themselves on a smoke-sized model.

    python benchmarks/uncertainty_figures.py [--work /tmp/uncertainty_figures] [--out docs/images]

One synthetic set (``make_synthetic_splits``, the demo preset at 128 px: 300 training and 48
validation images, 1-3 objects of 24-72 px) and one ``gfl_small`` trained on it by ``gfocal train`` for
2 minutes (backbone frozen, no mosaic, 10 warm-up iterations, so that so short a run learns something).
Then, as a user would run them, on the validation split:

- ``gfocal analyze calibration`` -> its ``reliability.png`` as ``uncertainty_calibration.png``;
- ``gfocal select`` on the validation images -> its ``contact_sheet.png`` as ``uncertainty_select.png``
  (colours reduced to a palette, so that the README's PNG stays small);
- ``gfocal analyze fusion --json`` (6 views) -> a bar chart of its AP and seconds, ``uncertainty_fusion.png``;
- ``gfocal analyze range --json`` (on the training split) -> a chart of its per-level distances,
  ``uncertainty_range.png``.

The numbers the two charts are drawn from go to ``--json`` (``common.report``: with the machine, commit
and command). The figures show what each tool draws, not what it gives on a well-trained model: a 2-minute model is weak.
Steps whose output exists in ``--work`` are not run again (the training above all).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from common import add_json_argument, report
from matplotlib.figure import Figure
from PIL import Image

from gfocal.data.synthetic import make_synthetic_splits

SIZE = 128
TRAIN_OPTIONS = [
    "--model", "gfl_small", "--image-size", str(SIZE), "--time-budget", "2", "--batch-size", "8", "--lr", "0.01",
    "--workers", "0", "--seed", "0",
    "--set", "warmup_iters=10", "--set", "mosaic=0", "--set", "model_overrides.trainable_backbone_layers=0",
]  # fmt: skip
MAX_PNG_BYTES = 200_000


def gfocal(*argv: str) -> None:
    """Run the command line as a user would (a fresh process each time)."""
    subprocess.run([sys.executable, "-m", "gfocal", "-q", *argv], check=True)


def prepare(work: Path) -> tuple[Path, Path, Path]:
    """The data set and the trained weights: (train json, val json, weights)."""
    train, val = work / "data" / "train.json", work / "data" / "val.json"
    if not val.exists():
        make_synthetic_splits(
            work / "data", "demo", seed=0, num_train=300, num_val=48, image_size=SIZE, size_range=(24, 72),
            objects_per_image=(1, 3),
        )  # fmt: skip
    weights = work / "run" / "model.safetensors"
    if not weights.exists():
        gfocal("train", "--data", str(train), "--val-data", str(val), "--out", str(work / "run"), *TRAIN_OPTIONS)
    return train, val, weights


def fusion_chart(report: dict[str, Any], path: Path) -> None:
    """AP and AP50 per method (bars) with the seconds each took, from ``analyze fusion --json``."""
    methods = list(report["methods"])
    rows = [report["methods"][m] for m in methods]
    figure = Figure(figsize=(6.4, 3.2), dpi=100, layout="constrained")
    ax = figure.subplots()
    positions = range(len(methods))
    ax.bar([p - 0.2 for p in positions], [r["AP"] for r in rows], width=0.4, label="AP")
    ax.bar([p + 0.2 for p in positions], [r["AP50"] for r in rows], width=0.4, label="AP50")
    ax.set_xticks(list(positions), [f"{m}\n{r['seconds']:.1f} s" for m, r in zip(methods, rows)])
    ax.set_ylabel("COCO AP on the validation split")
    ax.set_title(f"analyze fusion: the single model vs {report['views']} views merged three ways", fontsize=10)
    ax.legend(fontsize=8)
    figure.savefig(path)


def range_chart(report: dict[str, Any], path: Path) -> None:
    """Per FPN level, the 99th percentile and largest positive edge distance in strides against ``reg_max``,
    from ``analyze range --json``; levels ATSS assigned no positive are listed empty."""
    levels = list(report["levels"])
    rows = [report["levels"][level] for level in levels]
    figure = Figure(figsize=(6.4, 3.0), dpi=100, layout="constrained")
    ax = figure.subplots()
    positions = list(range(len(levels)))
    ax.barh([p + 0.2 for p in positions], [r["p99_distance"] or 0 for r in rows], height=0.4, label="99th percentile")
    ax.barh([p - 0.2 for p in positions], [r["max_distance"] or 0 for r in rows], height=0.4, label="largest")
    ax.axvline(report["reg_max"], color="black", linestyle="--", label=f"reg_max {report['reg_max']} (last bin)")
    ax.axvline(report["suggested_reg_max"], color="tab:red", linestyle=":", label="suggested reg_max")
    ax.set_yticks(
        positions, [f"{level} (stride {r['stride']})\n{r['positives']} positives" for level, r in zip(levels, rows)]
    )
    ax.invert_yaxis()
    ax.set_xlabel("positive edge distance, strides")
    clamped = 100 * report["clamped_edge_fraction"]
    ax.set_title(f"analyze range: {report['positives']} positives, {clamped:.1f}% of edges clamped", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    figure.savefig(path)


def save_small(source: Path, target: Path) -> None:
    """Copy a PNG, reduced to a 256-colour palette if it is over :data:`MAX_PNG_BYTES`."""
    shutil.copyfile(source, target)
    if target.stat().st_size > MAX_PNG_BYTES:
        Image.open(source).convert("RGB").quantize(colors=256).save(target, optimize=True)
    if target.stat().st_size > MAX_PNG_BYTES:
        raise RuntimeError(f"{target} is {target.stat().st_size} bytes, over {MAX_PNG_BYTES}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/uncertainty_figures"))
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    add_json_argument(parser, "uncertainty_figures")
    args = parser.parse_args()
    work, out = args.work, args.out
    train, val, weights = prepare(work)
    gfocal("analyze", "calibration", "--weights", str(weights), "--data", str(val), "--out", str(work / "cal"),
           "--overwrite")  # fmt: skip
    save_small(work / "cal" / "reliability.png", out / "uncertainty_calibration.png")
    gfocal("select", "--weights", str(weights), "--images", str(val.parent / "val"), "--budget", "12",
           "--sheet", "8", "--min-score", "0.15", "--out", str(work / "select"), "--overwrite")  # fmt: skip
    save_small(work / "select" / "contact_sheet.png", out / "uncertainty_select.png")
    gfocal("analyze", "fusion", "--weights", str(weights), "--data", str(val), "--scales", "0.83", "1.0", "1.2",
           "--flip", "--json", str(work / "fusion.json"))  # fmt: skip
    fusion = json.loads((work / "fusion.json").read_text())
    fusion_chart(fusion, out / "uncertainty_fusion.png")
    gfocal("analyze", "range", "--data", str(train), "--weights", str(weights), "--json", str(work / "range.json"))
    ranges = json.loads((work / "range.json").read_text())
    range_chart(ranges, out / "uncertainty_range.png")
    figures = {name: out / f"uncertainty_{name}.png" for name in ("calibration", "select", "fusion", "range")}
    sizes = {str(path): path.stat().st_size for path in figures.values()}
    report({"train_options": TRAIN_OPTIONS, "fusion": fusion, "range": ranges, "png_bytes": sizes}, args.json)


if __name__ == "__main__":
    main()
