"""The tables of docs/uncertainty.md (``benchmarks/uncertainty.py``) and docs/tiling.md (``benchmarks/tiling.py``,
``benchmarks/tiling_analysis.py``, ``benchmarks/tiling_real.py``)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

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
    "tiles_dist": "(d) tiles + distribution-aware merge (as first built)",
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


# docs/analysis.md's rows: label -> the key of ``benchmarks/ambiguity_auroc.py``'s AUROC table.
AUROC_ROWS = {
    "**`ambiguity`** (label-free box score)": "ambiguity (box score)",
    "focus, mean over the 4 edges": "focus: box mean",
    "entropy, mean over edges": "entropy: box mean",
    "std in bins, mean over edges": "std_bins: box mean",
    "std in pixels / box side, mean over edges": "std_rel: box mean",
    "second-peak ratio, max over edges": "second_peak_ratio: box max",
    "any edge with ≥ 2 modes": "bimodal (modes>=2): box any",
    "**`disagreement`** (label-aware: `annotated_nll`, max over edges)": "annotated_nll: box max",
    "per edge: focus vs that edge's own label": "focus: per edge",
    "per edge: `annotated_nll`": "annotated_nll: per edge",
    "`ambiguity`, blurred-only objects vs clean": "ambiguity (box score), blur only vs clean",
    "`ambiguity`, occluded-only objects vs clean": "ambiguity (box score), occluded only vs clean",
    "`disagreement`, occluded-only vs clean": "annotated_nll: box max, occluded only vs clean",
}


def auroc_table(name: str, results: Path) -> str:
    """The AUROC of each statistic against the recorded ambiguity, one column per evaluation of the run."""
    data = load(results, name)
    # One per iteration (an older version of the script evaluated the last iteration twice, alike).
    evaluations = list({entry["iteration"]: entry for entry in data["evaluations"]}.values())
    lines = [
        "| statistic (AUROC, held-out objects) | " + " | ".join(f"{e['iteration']} it." for e in evaluations) + " |",
        "|---|" + "---|" * len(evaluations),
    ]
    for label, key in AUROC_ROWS.items():
        lines.append(f"| {label} | " + " | ".join(f"{e['auroc'][key]:.2f}" for e in evaluations) + " |")
    last = evaluations[-1]
    counts = f"{last['annotations']} held-out objects, {last['ambiguous']} of them ambiguous."
    if not data.get("complete", True):
        counts += f" The run was stopped after {last['iteration']} of {data['settings']['iterations']} iterations."
    return "\n".join([*lines, "", f"{counts} {source_line(name, data)}"])


def merge_analysis_table(files: dict[str, str], labels: dict[str, str], results: Path) -> str:
    """``benchmarks/tiling_analysis.py``: per split and merge, AP and the detections (score >= its min_score)
    matched to the ground truth at IoU 0.5, summed over where the objects lie."""
    lines = [
        "| scenes | merge | AP | AP50 | AP75 | detections | true | duplicate | poor box (IoU 0.1-0.5) "
        "| background or wrong class | missed objects | mean IoU of found |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for split, file in files.items():
        data = json.loads((results / file).read_text())
        for merge, run in data["results"].items():
            lines.append(f"| {split} | {labels.get(merge, merge)} | {_merge_cells(run)} |")
        notes.append(f"{split}: {data['objects']} objects, score >= {data['min_score']}; {_provenance(data, file)}")
    return "\n".join([*lines, "", *notes])


def _merge_cells(run: dict[str, Any], bold: tuple[str, ...] = ()) -> str:
    """AP, AP50, AP75 (those in ``bold`` in bold), detections and the breakdown summed over the places."""
    places = run["by_place"].values()
    count = {kind: sum(p["detections"].get(kind, 0) for p in places) for kind in _KINDS}
    found = sum(p["objects"] - p["missed"] for p in places)
    iou = sum(p["mean_best_iou_found"] * (p["objects"] - p["missed"]) for p in places) / max(found, 1)
    return (
        " | ".join(f"**{run[m] * 100:.1f}**" if m in bold else f"{run[m] * 100:.1f}" for m in ("AP", "AP50", "AP75"))
        + f" | {run['detections']} | {count['true']} | {count['duplicate']} | {count['poor_box']} "
        f"| {count['background'] + count['wrong_class']} | {sum(p['missed'] for p in places)} | {iou:.3f}"
    )


def real_tiling_table(files: dict[str, str], labels: dict[str, str], results: Path) -> str:
    """``benchmarks/tiling_real.py``: per photograph, each merge of its tile detections (the best AP, AP50 and
    AP75 of the merges in bold) and the same model on the photograph's tiles, each tile scored alone."""
    lines = [
        "| photograph | prediction | AP | AP50 | AP75 | detections | true | duplicate | poor box (IoU 0.1-0.5) "
        "| background | missed crowns | mean IoU of found |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for photograph, file in files.items():
        data = json.loads((results / file).read_text())
        merged = data["results"]
        best = {m: max(run[m] for run in merged.values()) for m in ("AP", "AP50", "AP75")}
        for merge, run in merged.items():
            bold = tuple(m for m in best if run[m] == best[m])
            lines.append(f"| {photograph} | {labels.get(merge, merge)} | {_merge_cells(run, bold)} |")
        tiles = data["tiles"]
        lines.append(
            f"| {photograph} | its {tiles['images']} tiles, each scored alone | "
            + " | ".join(f"{tiles[m] * 100:.1f}" for m in ("AP", "AP50", "AP75"))
            + " | | | | | | | |"
        )
        notes.append(
            f"{photograph}: {data['objects']} crowns, `{Path(data['weights']).parent.name}`, tiles {data['tile']} px at "
            f"overlap {data['overlap']}, up to {data['max_detections']} detections, breakdown of scores >= "
            f"{data['min_score']}; {_provenance(data, file)}"
        )
    return "\n".join([*lines, "", *notes])


def place_table(file: str, merges: tuple[str, ...], labels: dict[str, str], results: Path) -> str:
    """``benchmarks/tiling_analysis.py``, where the objects lie: crossed by a tile border, seen whole by
    several tiles, by one; the objects by their place, the detections by their own box's."""
    data = json.loads((results / file).read_text())
    lines = [
        "| merge | where | objects | missed | mean IoU of found | IoU >= 0.75 of found | true | duplicate "
        "| poor box | background or wrong class |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for merge in merges:
        for place, row in data["results"][merge]["by_place"].items():
            count = {kind: row["detections"].get(kind, 0) for kind in _KINDS}
            lines.append(
                f"| {labels.get(merge, merge)} | {_PLACES[place]} | {row['objects']} | {row['missed']} "
                f"| {row['mean_best_iou_found']:.3f} | {row['share_iou_075_of_found'] * 100:.0f}% | {count['true']} "
                f"| {count['duplicate']} | {count['poor_box']} | {count['background'] + count['wrong_class']} |"
            )
    return "\n".join([*lines, "", _provenance(data, file)])


_PLACES = {"cut": "cut by a tile border", "overlap": "whole in 2+ tiles", "single": "in one tile only"}
_KINDS = ("true", "duplicate", "poor_box", "background", "wrong_class")


def _provenance(data: dict[str, Any], file: str) -> str:
    return f"`docs/results/{file}`: {data['machine']['cpu']}, torch {data['machine']['torch']}, commit {data['gfocal_commit'][:7]}."
