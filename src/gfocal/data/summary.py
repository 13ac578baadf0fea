"""Dataset statistics for ``gfocal data summary PATH``: text, plain data, and a PNG.

Box sizes use COCO's area ranges on the box area in the original image:
small < 32², medium < 96², large otherwise.
"""

from __future__ import annotations

import io
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gfocal.data.formats import load_dataset
from gfocal.data.records import DatasetRecords
from gfocal.fileio import atomic_write_bytes

__all__ = ["DatasetSummary", "summarize", "summarize_dataset", "plot_summary", "SIZE_RANGES"]

#: COCO area ranges, square pixels: (name, lower bound inclusive, upper bound exclusive).
SIZE_RANGES = (("small", 0.0, 32.0**2), ("medium", 32.0**2, 96.0**2), ("large", 96.0**2, float("inf")))


@dataclass(frozen=True)
class DatasetSummary:
    """What :func:`summarize` found; every count excludes skipped records.

    Attributes:
        source, format: where the dataset came from and its format.
        num_images, num_boxes: totals (``num_boxes`` includes crowd/difficult boxes).
        boxes_per_class: class name → number of boxes.
        sizes: ``{"small"|"medium"|"large": count}`` by COCO area ranges.
        sizes_per_class: class name → the same three counts.
        images_without_boxes: negatives.
        ignored_boxes: crowd or difficult boxes.
        image_sizes: ``{"width"|"height": [min, median, max]}`` in pixels.
        box_areas: every box area in square pixels (for the histogram).
        problems: ``ProblemReport.to_dict()``; ``problem_lines``: one line per kind.
    """

    source: str
    format: str
    num_images: int
    num_boxes: int
    boxes_per_class: dict[str, int]
    sizes: dict[str, int]
    sizes_per_class: dict[str, dict[str, int]]
    images_without_boxes: int
    ignored_boxes: int
    image_sizes: dict[str, list[int]]
    problems: dict[str, Any]
    problem_lines: list[str] = field(default_factory=list)
    box_areas: list[float] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-serialisable), without the per-box area list."""
        out = asdict(self)
        out.pop("box_areas")
        return out

    def to_text(self) -> str:
        """A human-readable report."""
        lines = [
            f"{self.source} ({self.format}): {self.num_images} images, {self.num_boxes} boxes, {len(self.boxes_per_class)} classes"
        ]
        if self.num_images:
            w, h = self.image_sizes["width"], self.image_sizes["height"]
            lines.append(f"image size min/median/max: {w[0]}x{h[0]} / {w[1]}x{h[1]} / {w[2]}x{h[2]}")
        lines.append(f"images without boxes: {self.images_without_boxes}; crowd/difficult boxes: {self.ignored_boxes}")
        lines.append("boxes by size (COCO areas): " + ", ".join(f"{k} {v}" for k, v in self.sizes.items()))
        width = max([len(n) for n in self.boxes_per_class] + [5])
        lines.append(f"{'class':<{width}}  {'boxes':>7}  {'small':>7}  {'medium':>7}  {'large':>7}")
        for name, count in self.boxes_per_class.items():
            s = self.sizes_per_class[name]
            lines.append(f"{name:<{width}}  {count:>7}  {s['small']:>7}  {s['medium']:>7}  {s['large']:>7}")
        lines.append("problems found:" if self.problem_lines else "problems found: none")
        lines += [f"  {line}" for line in self.problem_lines]
        return "\n".join(lines)


def _size_counts(areas: np.ndarray) -> dict[str, int]:
    return {name: int(((areas >= lo) & (areas < hi)).sum()) for name, lo, hi in SIZE_RANGES}


def summarize(records: DatasetRecords) -> DatasetSummary:
    """Count images, boxes per class and per COCO size range, negatives and problems."""
    boxes = [img.boxes() for img in records.images]
    all_boxes = np.concatenate(boxes) if boxes else np.zeros((0, 4), np.float32)  # [B, 4]
    labels = np.concatenate([img.labels() for img in records.images]) if boxes else np.zeros(0, np.int64)  # [B]
    areas = ((all_boxes[:, 2] - all_boxes[:, 0]) * (all_boxes[:, 3] - all_boxes[:, 1])).astype(np.float64)  # [B]
    names = records.class_names
    per_class = np.bincount(labels, minlength=len(names))
    widths = np.array([img.width for img in records.images] or [0])
    heights = np.array([img.height for img in records.images] or [0])
    return DatasetSummary(
        source=str(records.root),
        format=records.format,
        num_images=len(records.images),
        num_boxes=int(len(labels)),
        boxes_per_class={n: int(per_class[i]) for i, n in enumerate(names)},
        sizes=_size_counts(areas),
        sizes_per_class={n: _size_counts(areas[labels == i]) for i, n in enumerate(names)},
        images_without_boxes=sum(not img.annotations for img in records.images),
        ignored_boxes=int(sum(img.ignore_mask().sum() for img in records.images)),
        image_sizes={
            k: [int(v.min()), int(np.median(v)), int(v.max())] for k, v in (("width", widths), ("height", heights))
        },
        problems=records.problems.to_dict(),
        problem_lines=records.problems.lines(),
        box_areas=areas.tolist(),
    )


def plot_summary(summary: DatasetSummary, png_path: str | os.PathLike[str]) -> Path:
    """Save boxes per class (stacked by size) and a box-size histogram as a PNG, atomically; returns the path."""
    from matplotlib.figure import Figure  # no pyplot: renders with Agg, leaves the user's backend alone

    fig = Figure(figsize=(11, 4.2), dpi=100, layout="constrained")
    ax_cls, ax_hist = fig.subplots(1, 2, width_ratios=(1.4, 1))
    names = list(summary.boxes_per_class)
    bottom = np.zeros(len(names))
    for size, _, _ in SIZE_RANGES:
        counts = np.array([summary.sizes_per_class[n][size] for n in names], dtype=float)
        ax_cls.bar(names, counts, bottom=bottom, label=size)
        bottom += counts
    ax_cls.set_title(
        f"boxes per class ({summary.num_boxes} boxes, {summary.num_images} images, {summary.images_without_boxes} without boxes)"
    )
    ax_cls.legend(title="COCO size")
    ax_cls.tick_params(axis="x", labelrotation=45 if len(names) > 6 else 0)
    sides = np.sqrt(np.asarray(summary.box_areas)) if summary.box_areas else np.zeros(0)
    ax_hist.hist(sides, bins=np.geomspace(1, max(float(sides.max(initial=2)), 2) * 1.01, 30))
    ax_hist.set_xscale("log")
    for bound in (32, 96):
        ax_hist.axvline(bound, color="k", linestyle="--", linewidth=1)
    ax_hist.set_title("box size, sqrt(area) in pixels (lines: 32, 96)")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return atomic_write_bytes(png_path, buffer.getvalue())


def summarize_dataset(
    path: str | os.PathLike[str], png_path: str | os.PathLike[str] | None = None, **load_kwargs: Any
) -> DatasetSummary:
    """``gfocal data summary PATH``: load (without warnings; problems go in the summary), summarise, optionally plot.

    ``load_kwargs`` go to :func:`gfocal.data.load_dataset` (``images_dir``, ``split``, ``strict``...).
    """
    summary = summarize(load_dataset(path, warn=False, **load_kwargs))
    if png_path is not None:
        plot_summary(summary, png_path)
    return summary
