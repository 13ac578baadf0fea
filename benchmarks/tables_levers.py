"""docs/real_data.md's lever table (``benchmarks/lever_screen.py``): each screened run's weights and NMS IoU
thresholds scored on the split for choices, against one reference row."""

from __future__ import annotations

from pathlib import Path

from results import load, signed, source_line

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
            if (row["weights"], row["nms"]) == (base_weights, base_nms)
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
            lines.append(f"| {label} | {row['weights']} | {row['nms']:g} | {' | '.join(cells)} | {difference} |")
        notes.append(
            f"{label}: {data['iterations']} steps, seed {data['seed']}, `--set {' '.join(data['set']) or '(none)'}`. "
            f"{source_line(name, data)}"
        )
    return "\n".join([*lines, "", *notes])
