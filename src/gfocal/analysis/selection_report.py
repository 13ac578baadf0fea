"""``gfocal select``: the chosen images as files a labelling round and the dataset readers can use.

Writes::

    OUT/selected.csv        the chosen images, in the order chosen: rank, file, scores
    OUT/selected.txt        their absolute paths, one a line: a YOLO split list (``train: selected.txt``)
    OUT/selected.json       the same rows, the settings, and every scored image of the pool
    OUT/contact_sheet.png   the top images with their detections; each edge drawn as a band of
                            +-1 std around it, so uncertain edges stand out as wide bands
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure  # no pyplot: renders with Agg, leaves the user's backend alone
from matplotlib.patches import Rectangle

from gfocal.analysis.output import write_csv, write_json
from gfocal.analysis.selection import ImageScore, choose, score_images
from gfocal.data.image_io import decode_image
from gfocal.fileio import atomic_write_bytes, output_path, prepare_output_dir
from gfocal.models import GFLDetector

__all__ = ["COLUMNS", "contact_sheet", "selection_report"]

COLUMNS = (
    "rank",
    "file_name",
    "path",
    "width",
    "height",
    "detections",
    "uncertainty",
    "localisation",
    "classification",
)


def _row(rank: int, score: ImageScore, root: Path) -> dict[str, Any]:
    path = score.path.resolve()
    return {
        "rank": rank,
        "file_name": path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name,
        "path": str(path),
        "width": score.width,
        "height": score.height,
        "detections": len(score.scores),
        "uncertainty": score.uncertainty,
        "localisation": score.localisation,
        "classification": score.classification,
    }


def contact_sheet(
    scores: Sequence[ImageScore], min_score: float = 0.3, columns: int = 4, dpi: int = 80, max_boxes: int = 10
) -> bytes:
    """PNG bytes: each image with up to ``max_boxes`` detections scoring at least ``min_score`` and their
    edges drawn as +-1 std bands (red)."""
    rows = max(1, -(-len(scores) // columns))
    figure = Figure(figsize=(3.0 * columns, 3.2 * rows), dpi=dpi, layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for axis in axes:
        axis.set_axis_off()
    for rank, (axis, score) in enumerate(zip(axes, scores), start=1):
        axis.imshow(decode_image(score.path).permute(1, 2, 0).numpy())
        keep = np.flatnonzero(score.scores >= min_score)[:max_boxes]
        for box, std in zip(score.boxes[keep], score.edge_std[keep]):
            _draw_box(axis, box, std)
        axis.set_title(
            f"#{rank} {score.path.name[:24]}\nunc {score.uncertainty:.2f} loc {score.localisation:.3f} "
            f"cls {score.classification:.2f}",
            fontsize=7,
        )
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _draw_box(axis: Any, box: np.ndarray, std: np.ndarray) -> None:
    """The box outline and a translucent band of +-std (pixels) around each of its edges."""
    x0, y0, x1, y1 = box
    left, top, right, bottom = std
    axis.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="#00d0ff", linewidth=1.0))
    for x, spread in ((x0, left), (x1, right)):
        axis.add_patch(Rectangle((x - spread, y0), 2 * spread, y1 - y0, color="#ff2020", alpha=0.35, linewidth=0))
    for y, spread in ((y0, top), (y1, bottom)):
        axis.add_patch(Rectangle((x0, y - spread), x1 - x0, 2 * spread, color="#ff2020", alpha=0.35, linewidth=0))


def selection_report(
    model: GFLDetector,
    paths: Sequence[Path],
    root: str | os.PathLike[str],
    out: str | os.PathLike[str],
    budget: int,
    diversity: float = 0.0,
    sheet_size: int = 12,
    min_score: float = 0.3,
    overwrite: bool = False,
    **options: Any,
) -> list[dict[str, Any]]:
    """Score ``paths`` (:func:`score_images`, ``options`` passed on), :func:`choose` ``budget`` of them,
    write the files in ``out``; returns the chosen rows. ``root``: the pool's folder, for relative names."""
    out = prepare_output_dir(out, overwrite)  # refuse early, before the long run
    scores = score_images(model, paths, **options)
    chosen = choose(scores, budget, diversity)
    root = Path(root).resolve()
    rows = [_row(rank, scores[i], root) for rank, i in enumerate(chosen, start=1)]
    pool = sorted(range(len(scores)), key=lambda i: -scores[i].uncertainty)
    write_csv(output_path(out, "selected.csv"), rows, COLUMNS)
    atomic_write_bytes(output_path(out, "selected.txt"), "".join(f"{r['path']}\n" for r in rows).encode("utf-8"))
    settings = {"images": str(root), "budget": budget, "diversity": diversity, "scored": len(scores)}
    pool_rows = [_row(rank, scores[i], root) for rank, i in enumerate(pool, start=1)]
    write_json(output_path(out, "selected.json"), {"settings": settings, "selected": rows, "pool": pool_rows})
    sheet = contact_sheet([scores[i] for i in chosen[:sheet_size]], min_score)
    atomic_write_bytes(output_path(out, "contact_sheet.png"), sheet)
    return rows
