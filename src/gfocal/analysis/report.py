"""The visual ambiguity report: one PNG per top-ranked annotation and one self-contained HTML page.

Each figure shows the image crop around an annotation with the annotated box
(green), the box the model decodes at the annotation's probe location
(orange, dashed) and the matched detection (cyan, dotted), and each edge's
learned distribution drawn along the image axis it moves on: left and right
edges above the crop (x), top and bottom edges beside it (y). The annotated
edge is a vertical/horizontal line through its curve. Edges with two or more
modes are drawn in red and named in the title.

The HTML page embeds every figure as base64 PNG and needs no server.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure  # no pyplot: renders with Agg, leaves the user's backend alone
from matplotlib.patches import Rectangle

from gfocal.analysis.ambiguity import IMAGE_COLUMNS, AmbiguityAnalysis, AnnotationDistributions
from gfocal.analysis.distributions import EDGES
from gfocal.data.image_io import decode_image
from gfocal.fileio import atomic_write_bytes, output_path, safe_name

__all__ = ["PAGE_CSS", "annotation_figure", "draw_box", "write_figures", "render_html"]

_EDGE_COLOURS = {"left": "#1f77b4", "right": "#9467bd", "top": "#2ca02c", "bottom": "#8c564b"}
_BIMODAL = "#d62728"


def _crop_extent(box: Sequence[float], width: int, height: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) integer crop around a box: a margin of half its longer side, at least 16 px."""
    x0, y0, x1, y1 = box
    margin = max(16.0, 0.5 * max(x1 - x0, y1 - y0))
    return (
        int(max(0, np.floor(x0 - margin))),
        int(max(0, np.floor(y0 - margin))),
        int(min(width, np.ceil(x1 + margin))),
        int(min(height, np.ceil(y1 + margin))),
    )


def annotation_figure(image: np.ndarray, row: dict[str, Any], drawing: AnnotationDistributions, dpi: int = 80) -> bytes:
    """One annotation's figure as PNG bytes.

    Args:
        image (uint8 [H, W, 3]): the whole image, RGB.
        row: the annotation's row of :class:`AmbiguityAnalysis` (box, statistics).
        drawing: its distributions and the boxes to draw.
    """
    height, width = image.shape[:2]
    box = (row["x0"], row["y0"], row["x1"], row["y1"])
    cx0, cy0, cx1, cy1 = _crop_extent(box, width, height)
    bimodal = {edge for edge in EDGES if (row.get(f"{edge}_num_modes") or 0) >= 2}

    figure = Figure(figsize=(4.6, 4.6), dpi=dpi)
    grid = figure.add_gridspec(2, 2, width_ratios=(4, 1.2), height_ratios=(1.2, 4), wspace=0.05, hspace=0.05)
    crop_axes = figure.add_subplot(grid[1, 0])
    x_axes = figure.add_subplot(grid[0, 0], sharex=crop_axes)
    y_axes = figure.add_subplot(grid[1, 1], sharey=crop_axes)
    crop_axes.imshow(image[cy0:cy1, cx0:cx1], extent=(cx0, cx1, cy1, cy0), interpolation="nearest")
    crop_axes.set_xlim(cx0, cx1)
    crop_axes.set_ylim(cy1, cy0)
    draw_box(crop_axes, box, "#00e000", "-", 2.0)
    draw_box(crop_axes, drawing.probe_box, "#ff9900", "--", 1.4)
    if drawing.detection_box is not None:
        draw_box(crop_axes, drawing.detection_box, "#00d0ff", ":", 1.6)
    for index, edge in enumerate(EDGES):
        colour = _BIMODAL if edge in bimodal else _EDGE_COLOURS[edge]
        positions, probs = drawing.positions[index], drawing.probs[index]
        annotated = box[index]
        if edge in ("left", "right"):
            x_axes.fill_between(positions, probs, step="mid", color=colour, alpha=0.35, label=edge)
            x_axes.step(positions, probs, where="mid", color=colour, lw=2.0 if edge in bimodal else 1.0)
            x_axes.axvline(annotated, color=colour, lw=1, ls="-")
            crop_axes.axvline(annotated, color=colour, lw=1.5 if edge in bimodal else 0, alpha=0.7)
        else:
            y_axes.fill_betweenx(positions, probs, step="mid", color=colour, alpha=0.35, label=edge)
            y_axes.step(probs, positions, where="mid", color=colour, lw=2.0 if edge in bimodal else 1.0)
            y_axes.axhline(annotated, color=colour, lw=1, ls="-")
            crop_axes.axhline(annotated, color=colour, lw=1.5 if edge in bimodal else 0, alpha=0.7)
    top = float(min(1.0, max(0.2, 1.15 * drawing.probs.max())))
    x_axes.set_ylim(0, top)
    y_axes.set_xlim(0, top)
    x_axes.legend(loc="upper right", fontsize=6, frameon=False)
    y_axes.legend(loc="lower right", fontsize=6, frameon=False)
    for axes in (x_axes, y_axes, crop_axes):
        axes.tick_params(labelsize=6)
    x_axes.tick_params(labelbottom=False)
    y_axes.tick_params(labelleft=False)
    ambiguity = row.get("ambiguity")
    title = (
        f"#{row['rank']}  {row['class_name']}  ambiguity {ambiguity:.2f}"
        if ambiguity is not None
        else f"#{row['rank']}"
    )
    if bimodal:
        title += "  bimodal: " + ", ".join(e for e in EDGES if e in bimodal)
    figure.suptitle(title, fontsize=8, color=_BIMODAL if bimodal else "black")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def draw_box(axes, box: Sequence[float], colour: str, style: str, width: float) -> None:
    """An unfilled rectangle on matplotlib ``axes``; ``box`` xyxy in the axes' data units (image pixels)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    axes.add_patch(
        Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=colour, linestyle=style, linewidth=width)
    )


def write_figures(analysis: AmbiguityAnalysis, out: Path, top_k: int = 24) -> list[tuple[dict[str, Any], Path, bytes]]:
    """Write ``figures/rank_NNN_<annotation id>.png`` for the top-K annotations with statistics.

    Returns:
        (row, path, png bytes) per figure, in rank order.
    """
    written = []
    cache: dict[int, np.ndarray] = {}
    candidates = [(r, d) for r, d in zip(analysis.rows, analysis.distributions) if r["ambiguity"] is not None]
    for row, drawing in candidates[:top_k]:
        index = row["image_index"]
        if index not in cache:
            cache = {index: decode_image(analysis.records.images[index].path).permute(1, 2, 0).numpy()}
        png = annotation_figure(cache[index], row, drawing)
        name = safe_name(f"rank_{row['rank']:04d}_ann_{row['annotation_id']}") + ".png"
        path = atomic_write_bytes(output_path(out, "figures", name), png)
        written.append((row, path, png))
    return written


PAGE_CSS = """
body{font-family:system-ui,sans-serif;margin:16px;color:#222;max-width:1400px}
h1{font-size:20px} h2{font-size:16px;margin-top:24px}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{border:1px solid #ccc;border-radius:6px;padding:6px;width:380px;font-size:11px}
.card.bimodal{border-color:#d62728;border-width:2px}
.card img{width:368px}
table{border-collapse:collapse;font-size:11px}
td,th{border:1px solid #ddd;padding:2px 5px;text-align:right}
th{background:#f3f3f3} td.l{text-align:left}
.note{font-size:12px;color:#444;max-width:900px}
"""


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return html.escape(str(value))


def _card(row: dict[str, Any], png: bytes) -> str:
    bimodal = row.get("bimodal_edges") or 0
    edges = "".join(
        f"<tr><td class=l>{edge}</td><td>{_fmt(row[f'{edge}_std'], 1)}</td><td>{_fmt(row[f'{edge}_focus'])}</td>"
        f"<td>{_fmt(row[f'{edge}_num_modes'])}</td><td>{_fmt(row[f'{edge}_annotated_nll'])}</td>"
        f"<td>{'yes' if row[f'{edge}_annotated_at_second_peak'] else ''}</td></tr>"
        for edge in EDGES
    )
    image = base64.b64encode(png).decode("ascii")
    return (
        f"<div class='card{' bimodal' if bimodal else ''}'><img alt='annotation {_fmt(row['annotation_id'])}' "
        f"src='data:image/png;base64,{image}'><div><b>#{row['rank']}</b> annotation {_fmt(row['annotation_id'])} "
        f"in {_fmt(row['file_name'])} ({_fmt(row['class_name'])})<br>ambiguity {_fmt(row['ambiguity'])}, "
        f"disagreement {_fmt(row['disagreement'])} (rank {row['disagreement_rank']}), "
        f"matched {'IoU ' + _fmt(row['matched_iou']) if row['matched'] else 'no'}</div>"
        "<table><tr><th>edge</th><th>std px</th><th>focus</th><th>modes</th><th>NLL of label</th><th>label at 2nd peak</th></tr>"
        f"{edges}</table></div>"
    )


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td{' class=l' if c in ('file_name', 'class_name', 'annotation_id', 'image_id') else ''}>{_fmt(r.get(c))}</td>" for c in columns) + "</tr>"
        for r in rows
    )  # fmt: skip
    return f"<table><tr>{head}</tr>{body}</table>"


def render_html(
    analysis: AmbiguityAnalysis,
    figures: Sequence[tuple[dict[str, Any], Path, bytes]],
    title: str = "gfocal ambiguity report",
) -> str:
    """The self-contained report page (figures embedded as base64 PNG)."""
    settings = analysis.settings
    cards = "".join(_card(row, png) for row, _, png in figures)
    row_columns = (
        "rank",
        "annotation_id",
        "file_name",
        "class_name",
        "ambiguity",
        "disagreement",
        "disagreement_rank",
        "bimodal_edges",
        "matched_iou",
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{PAGE_CSS}</style></head>
<body><h1>{html.escape(title)}</h1>
<p class=note>Dataset <code>{html.escape(str(analysis.records.root))}</code> ({html.escape(analysis.records.format)}):
{settings.get("num_annotations", 0)} annotations in {settings.get("num_images", 0)} images.
<b>ambiguity</b> = mean over the two least certain edges of (1 − focus), focus = the probability mass of the
best pair of neighbouring bins of the edge's learned distribution (0 = four sharp edges, near 1 = spread out).
<b>disagreement</b> = the largest DFL (nats) of an annotated edge under its distribution: how surprised the model is
by the label. Green: annotation; orange dashed: the model's box at the annotation's location; cyan dotted: the
matched detection (IoU ≥ {settings.get("iou_threshold", 0.5)}). Red curves and borders: edges with two or more modes.
Check the top of both rankings first. Full data: <code>annotations.csv</code>, <code>annotations.json</code>.</p>
<h2>Top {len(figures)} annotations by ambiguity</h2><div class=cards>{cards}</div>
<h2>Annotations (top 100 by ambiguity)</h2>{_table(analysis.rows[:100], row_columns)}
<h2>Images (top 50 by their most ambiguous annotation)</h2>{_table(analysis.images[:50], IMAGE_COLUMNS)}
</body></html>
"""
