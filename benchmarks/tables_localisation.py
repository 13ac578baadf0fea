"""docs/localisation.md's table (``benchmarks/localisation.py``): per dataset and model, where AP75 is lost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from results import load, mean_std, signed, source_line

#: The oracle whose AP75 gain is largest, in the table's words (keys: gfocal.analysis.localisation_oracles.ORACLES).
LOSSES = {"perfect_boxes": "box regression", "perfect_ranking": "ranking", "no_duplicates": "duplicates"}


def localisation_table(files: dict[str, str], results: Path) -> str:
    """One row per dataset (a label -> its results file) and run: AP, how close and which way the best matches
    are, the score-IoU rank correlation, duplicates, and the AP75 each oracle gains. A file not written yet
    says so in place of its rows."""
    lines = [
        "| dataset | model | AP | AP50 | AP75 | median best IoU | best IoU ≥ 0.75 | width ratio | height ratio "
        "| Spearman score-IoU | duplicates (IoU 0.5) | AP75 gain: perfect boxes | perfect ranking | no duplicates "
        "| AP75 lost most in |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for dataset, name in files.items():
        if not (results / name).exists():
            notes.append(f"{dataset}: not measured yet (no `docs/results/{name}`).")
            continue
        data = load(results, name)
        lines += [f"| {dataset} | {run['label']} | {_cells(run)} |" for run in data["runs"]]
        threshold = data["runs"][0]["settings"]["score_threshold"] if data["runs"] else "?"
        notes.append(f"{dataset}: {data['objects']} objects, score ≥ {threshold}. {source_line(name, data)}")
    return "\n".join([*lines, "", *notes])


def _cells(run: dict[str, Any]) -> str:
    original, oracles = run["oracles"]["original"], run["oracles"]
    best, errors = run["best_iou"], run["box_errors"]
    duplicates = run["duplicates"]["iou_050"]
    cells = [
        *(f"{original[metric] * 100:.1f}" for metric in ("AP", "AP50", "AP75")),
        _number(best["quantiles"]["p50"], ".2f"),
        _number(best["share_iou_075"], ".0%"),
        _number(errors["width_ratio"], ".2f"),
        _number(errors["height_ratio"], ".2f"),
        _number(run["score_iou"]["spearman"], ".2f"),
        f"{duplicates['count_confident']} ({_number(duplicates['share_confident'], '.0%')})",
        *(signed(oracles[name]["gain"]["AP75"] * 100) for name in LOSSES),
        LOSSES.get(run["largest_ap75_gain"], "none"),
    ]
    return " | ".join(cells)


def _number(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def seeds_table(files: dict[int, str], results: Path) -> str:
    """One row per model over localisation files of the same comparison at several seeds (a seed -> its file):
    AP / AP50 / AP75 per seed, their mean ± std, and each model's mean over the last model's (the peer)."""
    metrics = ("AP", "AP50", "AP75")
    scores: dict[str, list[dict[str, float]]] = {}  # a model -> its original AP, AP50, AP75 at each seed
    for name in files.values():
        for run in load(results, name)["runs"]:
            scores.setdefault(run["label"], []).append(run["oracles"]["original"])
    labels = list(scores)
    values = {label: {m: [seed[m] for seed in scores[label]] for m in metrics} for label in labels}
    lines = [
        "| model | " + " | ".join(f"seed {seed}: AP / AP50 / AP75" for seed in files) + " | mean ± std: AP | AP50 "
        "| AP75 | AP, AP75 over " + labels[-1] + "'s |",
        "|---|" + "---|" * (len(files) + 4),
    ]
    for label in labels:
        per_seed = [" / ".join(f"{seed[m] * 100:.1f}" for m in metrics) for seed in scores[label]]
        means = [mean_std(values[label][m]) for m in metrics]
        ratios = [f"{sum(values[label][m]) / sum(values[labels[-1]][m]):.2f}x" for m in ("AP", "AP75")]
        lines.append(f"| {label} | " + " | ".join([*per_seed, *means, ", ".join(ratios)]) + " |")
    sources = [source_line(name, load(results, name)) for name in files.values()]
    return "\n".join(lines) + "\n\n" + "\n\n".join(sources)
