"""docs/ablation.md's tables, from ``gfocal bench ablation``'s JSON (``benchmarks/ablation.py`` adds the
machine, commit and command): ``{"results": {variant name: {"id", "runs": [{"seed", "AP", ...}]}}}``."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from results import load, mean_std, signed, source_line


def _short(name: str) -> str:
    """A variant's name without its explanation: "GFL = QFL + DFL" -> "GFL", "QFL only (Dirac box)" -> "QFL only"."""
    return name.split(" (")[0].split(" = ")[0]


def _variants(data: dict[str, Any]) -> dict[str, tuple[str, list[dict[str, Any]]]]:
    """id -> (name, runs sorted by seed)."""
    return {
        entry["id"]: (name, sorted(entry["runs"], key=lambda run: run["seed"]))
        for name, entry in data["results"].items()
    }


def _load_variants(
    names: str | tuple[str, ...], results: Path, older: str | None
) -> tuple[dict[str, tuple[str, list[dict[str, Any]]]], str]:
    """The variants of one results file, or of several (an ablation run in parts), in file order; and the
    source line of each file, one per paragraph."""
    files = (names,) if isinstance(names, str) else names
    variants: dict[str, tuple[str, list[dict[str, Any]]]] = {}
    sources = []
    for name in files:
        data = load(results, name)
        variants.update(_variants(data))
        sources.append(source_line(name, data, older))
    return variants, "\n\n".join(sources)


def ablation_table(names: str | tuple[str, ...], results: Path, older: str | None = None) -> str:
    """Mean ± std over seeds of AP, AP50, AP75, AP_small (in %), and the mean times, one row per variant."""
    variants, sources = _load_variants(names, results, older)
    lines = [
        "| variant | seeds | AP | AP50 | AP75 | AP_small | train s/iter | inference ms/image |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for variant, runs in variants.values():
        lines.append(
            f"| {variant} | {', '.join(str(run['seed']) for run in runs)} | "
            + " | ".join(mean_std([run[metric] for run in runs]) for metric in ("AP", "AP50", "AP75", "APs"))
            + f" | {statistics.fmean(run['train_s_per_iter'] for run in runs):.3f}"
            + f" | {statistics.fmean(run['inference_ms_per_image'] for run in runs):.1f} |"
        )
    return "\n".join([*lines, "", sources])


def seed_differences_table(
    names: str | tuple[str, ...], pairs: list[tuple[str, str]], results: Path, older: str | None = None
) -> str:
    """Per seed, AP of one variant minus AP of another (by id), in AP points, and their mean."""
    variants, sources = _load_variants(names, results, older)
    seeds = sorted({run["seed"] for _, runs in variants.values() for run in runs})
    lines = [
        "| comparison | " + " | ".join(f"seed {seed}" for seed in seeds) + " | mean |",
        "|---|" + "---|" * (len(seeds) + 1),
    ]
    for first, second in pairs:
        (first_name, first_runs), (second_name, second_runs) = variants[first], variants[second]
        base = {run["seed"]: run["AP"] for run in second_runs}
        differences = {run["seed"]: (run["AP"] - base[run["seed"]]) * 100 for run in first_runs if run["seed"] in base}
        cells = [signed(differences[seed]) if seed in differences else "–" for seed in seeds]
        lines.append(
            f"| {_short(first_name)} − {_short(second_name)} | "
            + " | ".join(cells)
            + f" | {signed(statistics.fmean(differences.values()))} |"
        )
    return "\n".join([*lines, "", sources])


def lengths_table(files: dict[str, str], seed: int, results: Path, older: str) -> str:
    """AP of each variant the files share, one column per file (``files``: column title -> file), at ``seed``;
    ``older`` describes the runs (see :func:`results.source_line`)."""
    columns = {title: _variants(load(results, name)) for title, name in files.items()}
    shared = [v for v in next(iter(columns.values())) if all(v in variants for variants in columns.values())]
    lines = ["| variant | " + " | ".join(files) + " |", "|---|" + "---|" * len(files)]
    for variant in shared:
        cells = []
        for variants in columns.values():
            ap = {run["seed"]: run["AP"] for run in variants[variant][1]}
            cells.append(f"{ap[seed] * 100:.1f}" if seed in ap else "–")
        lines.append(f"| {columns[next(iter(files))][variant][0]} | " + " | ".join(cells) + " |")
    return "\n".join([*lines, "", source_line(", ".join(files.values()), {}, older)])
