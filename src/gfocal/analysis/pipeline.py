"""The two analyses end to end, from a model and a dataset to an output folder (what the CLI calls).

``ambiguity_report`` writes::

    OUT/annotations.csv      one row per annotation, ranked (columns: gfocal.analysis.ambiguity.CSV_COLUMNS)
    OUT/annotations.json     the same rows plus the dataset's own extra fields, and the settings
    OUT/images.csv           one row per image, ranked by its most ambiguous annotation
    OUT/figures/*.png        the top-K annotations (gfocal.analysis.report.annotation_figure)
    OUT/report.html          one self-contained page (figures embedded)

``label_report`` writes ``OUT/labels.json`` and ``OUT/labels.png``.
Nothing is written outside OUT, and an existing non-empty OUT is refused unless ``overwrite``.
"""

from __future__ import annotations

import os
from typing import Any

from gfocal.analysis.ambiguity import CSV_COLUMNS, IMAGE_COLUMNS, AmbiguityAnalysis, analyze_ambiguity
from gfocal.analysis.labels import label_figure, quality_label_statistics
from gfocal.analysis.output import write_csv, write_json
from gfocal.analysis.report import render_html, write_figures
from gfocal.data import DatasetRecords
from gfocal.fileio import atomic_write_bytes, output_path, prepare_output_dir
from gfocal.models import GFLDetector

__all__ = ["ambiguity_report", "label_report"]


def ambiguity_report(
    model: GFLDetector,
    records: DatasetRecords,
    out: str | os.PathLike[str],
    top_k: int = 24,
    overwrite: bool = False,
    **options: Any,
) -> AmbiguityAnalysis:
    """Analyse ``records`` (:func:`analyze_ambiguity`, ``options`` passed on) and write the outputs to ``out``."""
    out = prepare_output_dir(out, overwrite)  # refuse early, before the long run
    analysis = analyze_ambiguity(model, records, **options)
    write_csv(output_path(out, "annotations.csv"), analysis.rows, CSV_COLUMNS)
    write_csv(output_path(out, "images.csv"), analysis.images, IMAGE_COLUMNS)
    rows = [{k: v for k, v in row.items() if k != "image_index"} for row in analysis.rows]
    summary = {"dataset": str(records.root), "format": records.format, "settings": analysis.settings}
    write_json(output_path(out, "annotations.json"), {**summary, "annotations": rows, "images": analysis.images})
    figures = write_figures(analysis, out, top_k)
    atomic_write_bytes(output_path(out, "report.html"), render_html(analysis, figures).encode("utf-8"))
    return analysis


def label_report(
    model: GFLDetector, records: DatasetRecords, out: str | os.PathLike[str], overwrite: bool = False, **options: Any
) -> dict[str, Any]:
    """Quality-label statistics (:func:`quality_label_statistics`, ``options`` passed on) to ``out``."""
    out = prepare_output_dir(out, overwrite)
    statistics = quality_label_statistics(model, records, **options)
    statistics["dataset"] = str(records.root)
    write_json(output_path(out, "labels.json"), statistics)
    atomic_write_bytes(output_path(out, "labels.png"), label_figure(statistics))
    return statistics
