"""docs/real_data.md's lever table (``benchmarks/lever_screen.py``): each screened run's weights and NMS IoU
thresholds scored on the split for choices, against one reference row."""

from __future__ import annotations

import statistics
from pathlib import Path

from results import load, mean_std, signed, source_line

METRICS = ("AP", "AP50", "AP75")


def lever_table(files: dict[str, str], reference: tuple[str, str, float], results: Path) -> str:
    """One row per screen (a label -> its results file), averaged weights and NMS threshold; the last column
    is AP minus the ``reference`` row's, ``(screen label, weights, nms)``. A file not written yet says so."""
    lines = [
        "| training run | weights | NMS IoU | AP | AP50 | AP75 | AP vs reference |",
        "|---|---|---|---|---|---|---|",
    ]
    loaded = {label: load(results, name) for label, name in files.items() if (results / name).exists()}
    base_label, base_weights, base_nms = reference
    base = next(
        (
            row["AP"]
            for row in loaded.get(base_label, {}).get("rows", [])
            if (row["weights"], row["nms"], row.get("infer")) == (base_weights, base_nms, None)
        ),
        None,
    )
    notes = []
    for label, name in files.items():
        if label not in loaded:
            notes.append(f"{label}: not measured yet (no `docs/results/{name}`).")
            continue
        data = loaded[label]
        for row in data["rows"]:
            cells = [f"{row[m] * 100:.1f}" for m in METRICS]
            difference = "–" if base is None else signed(round((row["AP"] - base) * 100, 1) + 0.0)  # no "−0.0"
            weights = row["weights"] + _inference_label(row.get("infer", {}))
            lines.append(f"| {label} | {weights} | {row['nms']:g} | {' | '.join(cells)} | {difference} |")
        notes.append(
            f"{label}: {data['iterations']} steps, seed {data['seed']}, `--set {' '.join(data['set']) or '(none)'}`. "
            f"{source_line(name, data)}"
        )
    return "\n".join([*lines, "", *notes])


def lever_seeds_table(files: dict[str, list[str]], reference: str, results: Path) -> str:
    """One row per seed: each setting's AP and AP75 (raw weights, NMS 0.6; a label -> its results file per seed)
    and its AP minus ``reference``'s on the same seed; then the mean ± std. Seeds without every file are named."""
    labels = list(files)
    lines = [
        "| seed | " + " | ".join(f"{label} AP / AP75" for label in labels) + " | "
        + " | ".join(f"{label} − {reference}" for label in labels if label != reference) + " |",
        "|---|" + "---|" * (2 * len(labels) - 1),
    ]  # fmt: skip
    measured: dict[str, list[dict]] = {label: [] for label in labels}
    notes = []
    for position in range(max(len(names) for names in files.values())):
        names = {label: files[label][position] for label in labels}
        missing = [name for name in names.values() if not (results / name).exists()]
        if missing:
            notes.append(f"not measured yet: {', '.join(f'`docs/results/{name}`' for name in missing)}.")
            continue
        rows = {label: _row(load(results, name), "raw", 0.6) for label, name in names.items()}
        for label, row in rows.items():
            measured[label].append(row)
        seed = load(results, names[reference])["seed"]
        cells = [f"{rows[label]['AP'] * 100:.1f} / {rows[label]['AP75'] * 100:.1f}" for label in labels]
        cells += [signed((rows[label]["AP"] - rows[reference]["AP"]) * 100) for label in labels if label != reference]
        lines.append(f"| {seed} | {' | '.join(cells)} |")
    if all(measured.values()):
        means = [f"{mean_std([r['AP'] for r in measured[label]])}" for label in labels]
        differences = [
            _signed_mean_std([(a["AP"] - b["AP"]) * 100 for a, b in zip(measured[label], measured[reference])])
            for label in labels
            if label != reference
        ]
        lines.append(f"| mean ± std (AP) | {' | '.join(means)} | {' | '.join(differences)} |")
        every = ", ".join(f"`docs/results/{n}`" for names in files.values() for n in names if (results / n).exists())
        notes.append(
            f"Files: {every}. First of them: {source_line(files[reference][0], load(results, files[reference][0]))}"
        )
    return "\n".join([*lines, "", *notes])


def _inference_label(options: dict) -> str:
    """``{"box_voting": "score", "box_voting_sigma": 0.05}`` → ``", box voting: score, σ 0.05"`` (``""`` for none)."""
    if not options:
        return ""
    named = {"box_voting": "box voting: {}", "box_voting_sigma": "σ {}"}
    return ", " + ", ".join(named.get(key, f"{key} {{}}").format(value) for key, value in options.items())


def _signed_mean_std(values: list[float]) -> str:
    """``+1.2 ± 0.3`` (sample std; the mean alone for one value)."""
    mean = signed(round(statistics.fmean(values), 1) + 0.0)
    return mean if len(values) == 1 else f"{mean} ± {statistics.stdev(values):.1f}"


def _row(data: dict, weights: str, nms: float) -> dict:
    return next(row for row in data["rows"] if (row["weights"], row["nms"], row.get("infer")) == (weights, nms, None))
