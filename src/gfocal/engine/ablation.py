"""The paper's ablation at an equal budget: variants x seeds, trained and evaluated alike.

Every run uses the same data, recipe, number of iterations and seed set; only
the model options of the variant differ (see ``gfocal.models.config``). The
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

__all__ = [
    "Variant",
    "VARIANTS",
    "SWEEPS",
    "ABLATION_RECIPE",
    "AblationSettings",
    "ablation_base",
    "run_ablation",
    "markdown_table",
]


@dataclass(frozen=True)
class Variant:
    """A row of the ablation: its name in tables and the model options that make it."""

    name: str
    overrides: dict[str, Any] = field(default_factory=dict)


# Keyed by the short ids the CLI's --variants takes.
VARIANTS: dict[str, Variant] = {
    # The paper's baseline: mmdetection's anchor-based ATSSHead (parity-tested in tests/interop).
    "atss-anchor": Variant(
        "ATSS baseline, the paper's (FL + centerness, anchor deltas)",
        {"classification": "focal", "box": "anchor_delta"},
    ),
    # The same with point distances instead of anchor deltas: the baseline of earlier tables.
    "atss": Variant("ATSS baseline (FL + centerness, Dirac box)", {"classification": "focal", "box": "dirac"}),
    "qfl": Variant("QFL only (Dirac box)", {"classification": "qfl", "box": "dirac"}),
    "dfl": Variant("DFL only (FL + centerness)", {"classification": "focal", "box": "dfl"}),
    "gfl": Variant("GFL = QFL + DFL"),
    "gfl-centerness": Variant("GFL, centerness as quality label", {"quality_label": "centerness"}),
    "gflv2": Variant("GFLv2 (DGQP)", {"dgqp": True}),
}
SWEEPS: dict[str, Variant] = {
    "reg_max4": Variant("GFL reg_max=4", {"reg_max": 4}),
    "reg_max8": Variant("GFL reg_max=8", {"reg_max": 8}),
    "beta1": Variant("GFL beta=1", {"qfl_beta": 1.0}),
}
METRICS = ("AP", "AP50", "AP75", "APs")


#: The ablation's budget on top of the paper recipe (its SGD, step-free cosine schedule, flip-only
#: augmentation): gfl_small at 256 px, 5 epochs of 8 images at lr 0.02 with 100 warm-up steps, no
#: evaluation during training, and a log row per iteration for the time per iteration.
ABLATION_RECIPE: dict[str, Any] = {
    "model": "gfl_small",
    "model_overrides": {"min_size": 256, "max_size": 256},
    "epochs": 5,
    "batch_size": 8,
    "lr": 0.02,
    "warmup_iters": 100,
    "schedule": "cosine",
    "eval_interval": 0,
    "workers": 2,
    "channels_last": True,
    "log_interval": 1,
}


@dataclass(frozen=True)
class AblationSettings:
    """One budget for every run: the training config each run starts from (data, recipe, iterations;
    its ``out_dir`` holds the runs), the seeds and the variants. A run changes only its seed, its
    folder and its variant's model options."""

    base: TrainConfig
    seeds: tuple[int, ...] = (0, 1, 2)
    variants: dict[str, Variant] = field(default_factory=lambda: {**VARIANTS, **SWEEPS})


def ablation_base(train_data: str, val_data: str, out_dir: str, **training: Any) -> TrainConfig:
    """The paper recipe with :data:`ABLATION_RECIPE` on top, then ``training`` (TrainConfig fields)."""
    return TrainConfig.from_recipe(
        "paper",
        **{**ABLATION_RECIPE, "train_data": train_data, "val_data": val_data, "out_dir": out_dir, **training},
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
