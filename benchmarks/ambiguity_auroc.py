"""Does the ambiguity score find the objects whose edges are blurred or occluded by construction?

    python benchmarks/ambiguity_auroc.py [--iterations 1000] [--every 200] [--train 400] [--val 100] [--size 64] [--out DIR]

Writes a synthetic train/val pair where a known share of objects have blurred
or partly occluded edges (the generator records which), trains ``gfl_small``
briefly on CPU (SGD 0.01, momentum 0.9, linear warm-up), probes the val
annotations (:func:`gfocal.analysis.probe_annotations`) and reports the
AUROC of the box ambiguity score and of other per-box and per-edge statistics
against the recorded labels: a JSON line to stderr every ``--every`` iterations, and at the end all
of them in one JSON (``common.report``, with the machine, commit and command; ``--json``). ``tests/analysis/test_auroc_training.py`` runs a
short version of this with a floor.
"""

from __future__ import annotations

import os

# Before torch loads: spinning OpenMP threads slow everything down on a shared, busy CPU.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import add_json_argument, report

from gfocal.analysis import (
    ambiguity_labels,
    annotation_statistics,
    auroc,
    distribution_statistics,
    edge_ambiguity_labels,
    probe_annotations,
)
from gfocal.data import DatasetRecords, DetectionDataset, collate_detection, load_dataset
from gfocal.data.synthetic import make_synthetic_splits
from gfocal.models import GFLDetector, gfl_small, save_weights

# A light gfl_small so that a CPU test can train it for a few hundred iterations: the stem and
# layer1 stay at their (random) initialisation, one 64-channel conv per tower.
MODEL_OPTIONS: dict[str, Any] = {
    "fpn_channels": 64,
    "feat_channels": 64,
    "stacked_convs": 1,
    "trainable_backbone_layers": 3,
}
# Objects big enough that a few-pixel blur is a real, visible ambiguity; half of them ambiguous.
DATA_OPTIONS: dict[str, Any] = {
    "objects_per_image": (1, 4),
    "size_range": (20, 56),
    "blur_fraction": 0.3,
    "occlusion_fraction": 0.3,
    "blur_sigma": (4.0, 8.0),
    "classes": ("rectangle", "ellipse"),
    "clutter": 4,
}


def make_data(
    root: Path, num_train: int, num_val: int, size: int, seed: int = 0
) -> tuple[DatasetRecords, DatasetRecords]:
    train, val = make_synthetic_splits(
        root, seed=seed, num_train=num_train, num_val=num_val, image_size=size, **DATA_OPTIONS
    )
    return load_dataset(train, warn=False), load_dataset(val, warn=False)


def train_briefly(
    records: DatasetRecords,
    size: int,
    iterations: int,
    batch_size: int = 8,
    seed: int = 0,
    callback: Callable[[int, GFLDetector], None] | None = None,
    every: int = 100,
    model_options: dict[str, Any] | None = None,
) -> GFLDetector:
    """A compact training loop (not the engine's): SGD 0.01, momentum 0.9, wd 1e-4, 50-iteration warm-up, flips.

    ``callback(iteration, model)`` runs every ``every`` iterations (model in eval mode meanwhile).
    """
    torch.manual_seed(seed)
    model = gfl_small(records.num_classes, min_size=size, max_size=size, **{**MODEL_OPTIONS, **(model_options or {})})
    model.train()
    optimizer = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9, weight_decay=1e-4
    )
    loader = torch.utils.data.DataLoader(
        DetectionDataset(records, train=True),
        batch_size=batch_size,
        shuffle=True,
        collate_fn=collate_detection,
        generator=torch.Generator().manual_seed(seed),
    )
    iteration = 0
    while True:
        for images, targets in loader:
            if callback is not None and iteration and iteration % every == 0:
                callback(iteration, model.eval())
                model.train()
            if iteration >= iterations:
                return model.eval()
            for group in optimizer.param_groups:
                group["lr"] = 0.01 * min(1.0, (iteration + 1) / 50)
            flip = torch.rand(len(images)) < 0.5
            images = [im.flip(-1) if f else im for im, f in zip(images, flip)]
            targets = [_flip_target(t, im.shape[-1]) if f else t for t, im, f in zip(targets, images, flip)]
            losses = model(images, [{"boxes": t["boxes"], "labels": t["labels"]} for t in targets])
            optimizer.zero_grad(set_to_none=True)
            sum(losses.values()).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 35.0)
            optimizer.step()
            iteration += 1


def _flip_target(target: dict[str, Any], width: int) -> dict[str, Any]:
    boxes = target["boxes"].clone()
    boxes[:, [0, 2]] = width - target["boxes"][:, [2, 0]]
    return {**target, "boxes": boxes}


def probe_statistics(model: GFLDetector, records: DatasetRecords, batch_size: int = 8) -> dict[str, np.ndarray]:
    """Probe every annotation of ``records``; per-edge statistics as numpy [K, 4], per-box as [K]."""
    collected: dict[str, list[np.ndarray]] = {}
    dataset = DetectionDataset(records)
    for start in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        images, targets = collate_detection(items)
        for probe, target in zip(probe_annotations(model, images, targets), targets):
            stats = distribution_statistics(probe.probs, probe.boxes, probe.bin_size)
            stats.update(annotation_statistics(probe.probs, probe.annotated_bins, target["boxes"], probe.boxes))
            width, height = (target["boxes"][:, 2:] - target["boxes"][:, :2]).unbind(-1)
            stats["std_rel"] = stats["std"] / torch.stack((width, height, width, height), -1)
            for key, value in stats.items():
                collected.setdefault(key, []).append(value.float().numpy())
    return {key: np.concatenate(values) for key, values in collected.items()}


def auroc_table(stats: dict[str, np.ndarray], records: DatasetRecords) -> dict[str, Any]:
    """AUROC per statistic: per box (max and mean over edges) and per edge."""
    extras = [a.extra for image in records.images for a in image.annotations]
    box_labels, edge_labels = ambiguity_labels(extras), edge_ambiguity_labels(extras)
    table: dict[str, Any] = {"ambiguity (box score)": auroc(stats["ambiguity"], box_labels)}
    for name in ("focus", "std_bins", "std_rel", "entropy", "second_peak_ratio", "annotated_nll"):
        value = -stats[name] if name == "focus" else stats[name]
        table[f"{name}: box max"] = auroc(value.max(1), box_labels)
        table[f"{name}: box mean"] = auroc(value.mean(1), box_labels)
        table[f"{name}: per edge"] = auroc(value.reshape(-1), edge_labels.reshape(-1))
    table["bimodal (modes>=2): box any"] = auroc((stats["num_modes"] >= 2).any(1), box_labels)
    # By kind: objects with that kind of ambiguity (and no other) against clean ones.
    kinds = np.array(
        [[e.get("ambiguous_edges", {}).get(edge) for edge in ("left", "top", "right", "bottom")] for e in extras],
        dtype=object,
    )
    for kind in ("blur", "occluded"):
        only = (kinds == kind).any(1) & ~((kinds != kind) & (kinds != None)).any(1)  # noqa: E711
        subset = only | ~box_labels
        table[f"ambiguity (box score), {kind} only vs clean"] = auroc(stats["ambiguity"][subset], only[subset])
        table[f"annotated_nll: box max, {kind} only vs clean"] = auroc(
            stats["annotated_nll"].max(1)[subset], only[subset]
        )
    return {"auroc": table, "annotations": len(box_labels), "ambiguous": int(box_labels.sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--every", type=int, default=200, help="report the AUROCs every this many iterations")
    parser.add_argument("--train", type=int, default=400)
    parser.add_argument("--val", type=int, default=100)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trainable-layers", type=int, default=MODEL_OPTIONS["trainable_backbone_layers"])
    parser.add_argument("--out", type=Path, default=None, help="keep the data and weights here")
    add_json_argument(parser, "ambiguity_auroc")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    root = args.out or Path(tempfile.mkdtemp(prefix="gfocal-auroc-"))
    train, val = make_data(root, args.train, args.val, args.size, args.seed)
    start = time.perf_counter()
    settings = {key: value for key, value in vars(args).items() if key not in ("json", "out")}
    evaluations: list[dict[str, Any]] = []

    def evaluate(iteration: int, model: GFLDetector) -> None:
        result = {"iteration": iteration, "train_seconds": round(time.perf_counter() - start, 1)}
        result.update(auroc_table(probe_statistics(model, val), val))
        evaluations.append(result)
        print(json.dumps(result, default=str), file=sys.stderr, flush=True)
        # A run stopped part-way still leaves the evaluations so far.
        report({"complete": False, "settings": settings, "evaluations": evaluations}, args.json, quiet=True)

    model = train_briefly(
        train,
        args.size,
        args.iterations,
        seed=args.seed,
        callback=evaluate,
        every=args.every,
        model_options={"trainable_backbone_layers": args.trainable_layers},
    )
    if not evaluations or evaluations[-1]["iteration"] != args.iterations:  # the callback ran at the end already
        evaluate(args.iterations, model)
    report({"complete": True, "settings": settings, "data": str(root), "evaluations": evaluations}, args.json)
    if args.out is not None:
        save_weights(model, args.out / "model.safetensors")


if __name__ == "__main__":
    main()
