"""Named training recipes: field values of :class:`gfocal.engine.config.TrainConfig`, the one home of each.

A recipe is applied under the YAML file, the flags and ``--set`` (``load_config``), or by name in Python
(``TrainConfig.from_recipe("paper", epochs=24)``); the ``model_overrides`` set on top are merged into the
recipe's, key by key. The CLI's ``--recipe`` choices and help, ``gfocal demo``,
``gfocal bench ablation``, the benchmarks and the tests all read them here.

This module is plain data with no gfocal import, so a benchmark that trains an older checkout can read
the recipes of its own (``benchmarks/demo_steps.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Recipe", "RECIPES"]


@dataclass(frozen=True)
class Recipe:
    """A recipe: one line for ``--help``, and the TrainConfig fields it sets (the others keep their defaults)."""

    summary: str
    values: dict[str, Any] = field(default_factory=dict)


#: PAPER.md's COCO "1x" recipe: ResNet-50 at 1333x800, SGD lr 0.01 per 16 images, momentum 0.9, weight
#: decay 1e-4, 500 warm-up iterations, 12 epochs with the rate x0.1 at epochs 8 and 11, flip only.
_PAPER = {
    "model": "gfl_resnet50_fpn",
    "scale_range": None,
    "mosaic": 0.0,
    "photometric": False,
    "epochs": 12,
    "optimizer": "sgd",
    "lr": 0.01,
    "weight_decay": 1e-4,
    "warmup_iters": 500,
    "schedule": "step",
    "ema": False,
}

#: mmdetection's GFL "ms-2x" configs (gfl_r50_fpn_ms-2x_coco.py, on which the R-101, X-101 and DCN zoo configs
#: build): the 1x recipe for 24 epochs with the rate x0.1 at epochs 16 and 22, and multi-scale training:
#: RandomResize to (1333, s) keeping the ratio, s uniform in [480, 800]. Here each batch's longer side is drawn
#: in [800, 1333] (multiples of 32) with the model's 800/1333 ratio, so the shorter side is in [480, 800] too.
#: The paper's 43.1 (R-50), 45.0 (R-101) and 48.2 (X-101-32x4d-DCN) test-dev AP are this recipe's.
_PAPER_2X_MS = {**_PAPER, "epochs": 24, "step_epochs": (16, 22), "multiscale": (800, 1333)}

#: The paper's optimiser and flip-only augmentation on gfl_small at 256 px, 8 images per step at lr 0.02 per
#: 16 (0.01 as used), 100 warm-up steps, a cosine schedule, evaluation only at the end: the CPU benchmarks'
#: recipe (their figures were measured with it), and ``gfocal demo``'s until it learned too little on CPUs
#: without native bf16.
_PAPER_SMALL = {
    **_PAPER,
    "model": "gfl_small",
    "model_overrides": {"min_size": 256, "max_size": 256},
    "batch_size": 8,
    "lr": 0.02,
    "warmup_iters": 100,
    "schedule": "cosine",
    "eval_interval": 0,
}

#: ``gfocal demo``'s: the small-data recipe (AdamW, mosaic, colour jitter, flips, EMA) on gfl_nano at the demo
#: images' 256 px, 8 images per step, without zoom-and-crop, evaluation only at the end. Chosen at equal steps
#: on the demo's data on a 2-core AMD EPYC without native bf16 (float32; #28): after 259 steps AP 18.1, against
#: 8.7 with zoom-and-crop and 6.8 with flips only at twice the rate; the paper-small recipe made 110 steps in the
#: demo's 3.5 minutes there and reached AP 2.1.
_DEMO = {
    "model": "gfl_nano",
    "image_size": 256,
    "batch_size": 8,
    "scale_range": None,
    "eval_interval": 0,
}

#: Named recipes. "default" is the dataclass defaults (the small-data recipe, chosen by
#: ``benchmarks/small_data.py``), also for fine-tuning; "finetune" is the small-data recipe with a rate half the
#: default's and a short warm-up, the usual advice for pretrained weights. By name only: on
#: ``benchmarks/transfer.py`` it fine-tuned 0.9 AP below the default recipe (three seeds, within their noise;
#: docs/transfer.md), so it is not picked by itself.
RECIPES: dict[str, Recipe] = {
    "default": Recipe("the small-data recipe (zoom-and-crop, mosaic, colour jitter, AdamW, EMA)"),
    "finetune": Recipe(
        "the same with lr 0.001 and 20 warm-up iterations (measured no better for fine-tuning: docs/transfer.md)",
        {"lr": 0.001, "warmup_iters": 20},
    ),
    "paper": Recipe("the paper's COCO 1x recipe (ResNet-50 at 1333x800, SGD, 12 epochs, flip only)", _PAPER),
    "paper-2x-ms": Recipe(
        "the paper's 2x multi-scale recipe (24 epochs, steps at 16 and 22, shorter side 480-800 at 1333)",
        _PAPER_2X_MS,
    ),
    "paper-small": Recipe(
        "the CPU benchmarks' (the paper's SGD and flips on gfl_small at 256 px, batch 8, cosine)", _PAPER_SMALL
    ),
    "demo": Recipe("gfocal demo's (the small-data recipe without zoom-and-crop on gfl_nano at 256 px, batch 8)", _DEMO),
    # A light gfl_small (one 64-channel conv per tower) that a CPU trains for hundreds of steps in minutes.
    "ambiguity": Recipe(
        "the ambiguity experiments' (benchmarks/ambiguity_auroc.py): paper-small's on a light gfl_small at 64 px",
        {
            **_PAPER_SMALL,
            "model_overrides": {
                "fpn_channels": 64,
                "feat_channels": 64,
                "stacked_convs": 1,
                "trainable_backbone_layers": 3,
            },
            "image_size": 64,
            "warmup_iters": 50,
        },
    ),
    "ablation": Recipe(
        "gfocal bench ablation's budget on a CPU (paper-small's for 5 epochs)", {**_PAPER_SMALL, "epochs": 5}
    ),
}
