"""The paper's ablation at an equal budget: variants x seeds, trained and evaluated alike.

Every run uses the same data, recipe (``"ablation"`` of :data:`gfocal.engine.recipes.RECIPES`),
number of iterations and seed set; only the model options of the variant differ
(:data:`gfocal.models.variants.PAPER_VARIANTS` and ``SWEEPS`` by default; any of ``VARIANTS``). The
result per variant is the mean and standard deviation over seeds of AP, AP50,
AP75 and AP_small, plus training time per iteration and inference time per image.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from gfocal.engine.config import TrainConfig
from gfocal.engine.distributed import resolve_device
from gfocal.engine.trainer import train
from gfocal.models.variants import PAPER_VARIANTS, SWEEPS, Variant

__all__ = [
    "AblationSettings",
    "ablation_base",
    "run_ablation",
    "markdown_table",
]


METRICS = ("AP", "AP50", "AP75", "APs")


@dataclass(frozen=True)
class AblationSettings:
    """One budget for every run: the training config each run starts from (data, recipe, iterations;
    its ``out_dir`` holds the runs), the seeds and the variants. A run changes only its seed, its
    folder and its variant's model options."""

    base: TrainConfig
    seeds: tuple[int, ...] = (0, 1, 2)
    variants: dict[str, Variant] = field(default_factory=lambda: {**PAPER_VARIANTS, **SWEEPS})


def ablation_base(
    train_data: str, val_data: str, out_dir: str, recipe: str = "ablation", **training: Any
) -> TrainConfig:
    """The ``recipe`` with these data and run folder, then ``training`` (TrainConfig fields).

    Every run evaluates once, at its end, and logs each iteration (the time per iteration is read from the log).
    """
    return TrainConfig.from_recipe(
        recipe,
        train_data=train_data,
        val_data=val_data,
        out_dir=out_dir,
        **{**training, "eval_interval": 0, "log_interval": 1},
    )


def _train_config(settings: AblationSettings, overrides: dict[str, Any], seed: int, out: Path) -> TrainConfig:
    base = settings.base
    return base.replace(model_overrides={**base.model_overrides, **overrides}, seed=seed, out_dir=str(out))


def _inference_ms(weights: Path, images: list[torch.Tensor], precision: str) -> float:
    """Median time per image, on the device the runs trained on, in their precision."""
    from gfocal.models import load_model
    from gfocal.models.precision import autocast, prepare_for_inference, resolve_precision

    device = resolve_device()
    model = prepare_for_inference(load_model(weights).to(device))
    images = [image.to(device) for image in images]
    with torch.inference_mode(), autocast(resolve_precision(precision, device)):
        model(images[:1])  # warm-up
        samples = []
        for image in images:
            start = time.perf_counter()
            model([image])
            if device.type == "cuda":
                torch.cuda.synchronize()
            samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


def _iteration_seconds(run_dir: Path) -> float:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    times = [row["iter_time"] for row in rows if row.get("kind") == "train"]
    return statistics.median(times[3:] or times)  # the first iterations include allocator warm-up


def run_ablation(settings: AblationSettings, images: list[torch.Tensor], log: Callable[[str], None] = print) -> dict:
    """Train and evaluate every variant with every seed; returns per-run numbers and per-variant summaries.

    Results are keyed by the variants' table names; run folders are ``out_dir/<id>_seed<seed>``.
    """
    results: dict[str, Any] = {}
    for key, variant in settings.variants.items():
        runs = []
        for seed in settings.seeds:
            out = Path(settings.base.out_dir) / f"{key}_seed{seed}"
            log(f"{variant.name}, seed {seed} -> {out}")
            result = train(_train_config(settings, variant.overrides, seed, out))
            runs.append(
                {
                    "seed": seed,
                    **{m: result.final_metrics[m] for m in METRICS},
                    "iterations": result.iterations,
                    "train_s_per_iter": _iteration_seconds(out),
                    "inference_ms_per_image": _inference_ms(result.weights, images, settings.base.precision),
                }
            )
        results[variant.name] = {
            "id": key,
            "model_overrides": variant.overrides,
            "runs": runs,
            "summary": _summarise(runs),
        }
    return results


def _summarise(runs: list[dict]) -> dict[str, dict[str, float]]:
    keys = (*METRICS, "train_s_per_iter", "inference_ms_per_image")
    return {
        key: {
            "mean": statistics.mean(r[key] for r in runs),
            "std": statistics.stdev([r[key] for r in runs]) if len(runs) > 1 else 0.0,
        }
        for key in keys
    }


def markdown_table(results: dict) -> str:
    """One row per variant: mean ± std over seeds (AP in percent)."""
    header = (
        "| variant | AP | AP50 | AP75 | AP_small | train s/iter | inference ms/image |\n|---|---|---|---|---|---|---|"
    )
    rows = []
    for name, entry in results.items():
        summary = entry["summary"]
        cells = [f"{100 * summary[m]['mean']:.1f} ± {100 * summary[m]['std']:.1f}" for m in METRICS]
        cells += [f"{summary['train_s_per_iter']['mean']:.3f}", f"{summary['inference_ms_per_image']['mean']:.1f}"]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join([header, *rows])
