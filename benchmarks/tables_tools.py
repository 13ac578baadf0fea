"""The tables of docs/uncertainty.md (``benchmarks/uncertainty.py``) and docs/tiling.md (``benchmarks/tiling.py``)."""

from __future__ import annotations

import statistics
from pathlib import Path

from results import load, source_line

FUSION_SETTINGS = {
    "tta_flip_3_scales": "6 (flip x scales 0.8, 1.0, 1.25)",
    "ensemble_2_models": "2 models (seed 0 selected + random)",
}
FUSION_METHODS = {"nms": "NMS", "wbf": "WBF", "distribution": "distribution"}
TILING_METHODS = {
    "resize_whole_image": "(a) whole image resized to {tile} px",
    "whole_image_native_size": "(a') whole image at its own size, one pass",
    "tiles_nms": "(b) tiles + NMS",
    "tiles_nmm": "(c) tiles + greedy NMM (SAHI)",
    "tiles_dist": "(d) tiles + distribution-aware merge",
}


def active_learning_table(name: str, results: Path) -> str:
    """Test AP per seed: the start model, and the models trained with the selected and the random images."""
    data = load(results, name)
    rounds = data["active_learning"]["rounds"]
    lines = ["| seed | start only | + selected | + random |", "|---|---|---|---|"]
    for entry in rounds:
        lines.append(
            f"| {entry['seed']} | {entry['initial_AP']:.3f} | {entry['selected_AP']:.3f} | {entry['random_AP']:.3f} |"
        )
    columns = [[entry[key] for entry in rounds] for key in ("initial_AP", "selected_AP", "random_AP")]
    if len(rounds) > 1:
        lines.append(
            "| mean ± sd | "
            + " | ".join(f"{statistics.fmean(c):.3f} ± {statistics.stdev(c):.3f}" for c in columns)
            + " |"
        )
    return "\n".join([*lines, "", source_line(name, data)])


def fusion_table(name: str, results: Path) -> str:
    """Test AP and seconds of the single model and of each merge of several views or models."""
    data = load(results, name)
    lines = ["| views | method | AP | AP50 | AP75 | seconds |", "|---|---|---|---|---|---|"]
    single = next(iter(data["fusion"].values()))["single"]
    lines.append(f"| 1 (the model alone) | single | {_metrics(single)} |")
    for setting, label in FUSION_SETTINGS.items():
        for method, method_label in FUSION_METHODS.items():
            lines.append(f"| {label} | {method_label} | {_metrics(data['fusion'][setting][method])} |")
            label = ""
    return "\n".join([*lines, "", source_line(name, data)])


def _metrics(entry: dict[str, float]) -> str:
    return f"{entry['AP']:.3f} | {entry['AP50']:.3f} | {entry['AP75']:.3f} | {entry['seconds']:.1f}"


def calibration_table(name: str, results: Path) -> str:
    """Spread against error on the test split, as trained and with the temperature fitted on validation."""
    data = load(results, name)
    calibration = data["calibration"]
    lines = [
        "| | RMV px | RMSE px | ratio | ENCE edges | ENCE boxes | Spearman edges | Spearman boxes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    labels = {
        "as_trained": "as trained",
        "with_temperature": f"temperature {calibration['fitted_std_scale_on_val']:.2f}",
    }
    for key, label in labels.items():
        edges, boxes = calibration[key]["edges"], calibration[key]["boxes"]
        lines.append(
            f"| {label} | {edges['rmv']:.1f} | {edges['rmse']:.1f} | {edges['ratio']:.2f} | {edges['ence']:.2f} | "
            f"{boxes['ence']:.2f} | {edges['spearman']:.2f} | {boxes['spearman']:.2f} |"
        )
    matched = calibration["as_trained"]["matched_boxes"]
    return "\n".join([*lines, "", f"{matched} matched boxes. {source_line(name, data)}"])


def tiling_table(name: str, results: Path) -> str:
    """COCO metrics, detections and time per megapixel of each way to run the same weights on the large scenes."""
    data = load(results, name)
    measured = data["results"]
    best = {key: max(entry[key] for entry in measured.values()) for key in ("AP", "AP50", "AP75", "APs", "AR100")}
    lines = [
        f"| method (same weights) | AP | AP50 | AP75 | AP small | recall ({data['max_detections']} dets) | detections "
        "| s / megapixel |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, label in TILING_METHODS.items():
        entry = measured[key]
        cells = [
            f"**{entry[m] * 100:.1f}**" if entry[m] == best[m] else f"{entry[m] * 100:.1f}"
            for m in ("AP", "AP50", "AP75", "APs", "AR100")
        ]
        lines.append(
            f"| {label.format(tile=data['tile'])} | "
            + " | ".join(cells)
            + f" | {entry['detections']} | {entry['seconds_per_megapixel']:.2f} |"
        )
    return "\n".join([*lines, "", source_line(name, data)])
