"""Turn what a reader parsed into validated :class:`ImageRecord` objects.

Readers only parse; this module is the one place that checks image files and
repairs boxes, so every format gets the same rules:

- missing, unreadable or truncated image files: record skipped (warning);
- declared size differing from the file: file size used (warning);
- boxes partly outside the image: clipped (warning); entirely outside,
  width/height <= 0 after clipping, NaN or infinite: dropped (warning);
- exact duplicate boxes with the same label: dropped (warning);
- images without boxes: kept as negatives (note);
- crowd/difficult boxes: kept with their flag (note).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gfocal.data.image_io import ImageCheck, ImageInfo, ImageProblem, probe_image
from gfocal.data.problems import ProblemReport
from gfocal.data.records import Annotation, ImageRecord

__all__ = ["RawImage", "validate_images", "sanitize_boxes"]

_PROBE_THREADS = 8  # probing is file I/O bound; threads overlap it


@dataclass
class RawImage:
    """One image as a reader parsed it, before validation.

    Attributes:
        path: resolved image path.
        file_name: the name as written in the dataset.
        id: the dataset's image id.
        where: how messages name this record, e.g. ``"ann.json, image id=3"``.
        declared_size: ``(w, h)`` written in the annotation file, or None.
        boxes: float64 [M, 4] xyxy absolute pixels (may hold NaN, be outside...).
        labels: int64 [M] in 0..C-1 (readers reject unknown classes).
        ann_ids: M annotation ids, or None each.
        iscrowd, difficult: bool [M].
        extras: M dicts of other per-box fields.
        box_names: M strings naming each box in messages (``"annotation id=17"``).
        normalized: boxes are fractions of the image size (YOLO); scaled once the size is known.
    """

    path: Path
    file_name: str
    id: int | str
    where: str
    declared_size: tuple[int, int] | None = None
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    ann_ids: list[Any] = field(default_factory=list)
    iscrowd: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    difficult: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    extras: list[dict[str, Any]] = field(default_factory=list)
    box_names: list[str] = field(default_factory=list)
    normalized: bool = False


def sanitize_boxes(
    boxes: np.ndarray, labels: np.ndarray, width: int, height: int, report: ProblemReport, names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Clip boxes to the image and drop the unusable ones, reporting each by name.

    Args:
        boxes: float [M, 4] xyxy absolute pixels.
        labels: int [M].
        width, height: image size in pixels.
        report: receives ``clipped_box``, ``outside_box``, ``degenerate_box``, ``duplicate_box``.
        names: M strings naming each box (file and record).

    Returns:
        ``(clipped boxes float64 [M, 4], keep bool [M])``.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    finite = np.isfinite(boxes).all(axis=1)
    safe = np.where(finite[:, None], boxes, 0.0)
    wh_ok = (safe[:, 2] > safe[:, 0]) & (safe[:, 3] > safe[:, 1])
    limits = np.array([width, height, width, height], dtype=np.float64)
    clipped = np.clip(safe, 0.0, limits)
    inside = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    degenerate = ~finite | ~wh_ok
    outside = ~degenerate & ~inside
    was_clipped = ~degenerate & inside & (clipped != safe).any(axis=1)
    keep = ~degenerate & ~outside
    for kind, mask, text in (
        ("degenerate_box", degenerate, "degenerate box"),
        ("outside_box", outside, f"box outside the {width}x{height} image"),
        ("clipped_box", was_clipped, f"box clipped to the {width}x{height} image"),
    ):
        for i in np.flatnonzero(mask):
            report.add(kind, f"{names[i]}: {text} {boxes[i].tolist()}")
    duplicate = _duplicates(clipped, labels, keep)
    for i in np.flatnonzero(duplicate):
        report.add(
            "duplicate_box", f"{names[i]}: duplicate of an earlier box {clipped[i].tolist()} with label {labels[i]}"
        )
    return clipped, keep & ~duplicate


def _duplicates(boxes: np.ndarray, labels: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """bool [M]: valid rows equal (box and label) to an earlier valid row."""
    dup = np.zeros(len(boxes), dtype=bool)
    idx = np.flatnonzero(valid)
    if len(idx) < 2:
        return dup
    rows = np.concatenate([boxes[idx], labels[idx, None].astype(np.float64)], axis=1)
    _, first = np.unique(rows, axis=0, return_index=True)
    dup[idx] = True
    dup[idx[first]] = False
    return dup


def _probe_all(raws: Sequence[RawImage], check: ImageCheck) -> list[ImageInfo | ImageProblem | None]:
    def one(raw: RawImage) -> ImageInfo | ImageProblem | None:
        if check == "none" and raw.declared_size is not None:
            return None
        try:
            return probe_image(raw.path, "fast" if check == "none" else check)
        except ImageProblem as problem:
            return problem

    if len(raws) < 16:
        return [one(r) for r in raws]
    with ThreadPoolExecutor(_PROBE_THREADS) as pool:
        return list(pool.map(one, raws))


def _image_size(raw: RawImage, info: ImageInfo | None, report: ProblemReport) -> tuple[int, int]:
    if info is None:
        return raw.declared_size  # type: ignore[return-value]  # check="none" with a declared size
    if info.orientation != 1:
        report.add("exif_rotated", f"{raw.where}: EXIF orientation {info.orientation}")
    if info.mode != "RGB":
        report.add("non_rgb_image", f"{raw.where}: mode {info.mode}")
    size = (info.width, info.height)
    if raw.declared_size is not None and tuple(raw.declared_size) != size and min(raw.declared_size) > 0:
        hint = ""
        if tuple(raw.declared_size) == (info.raw_width, info.raw_height):
            hint = f" (the size before EXIF orientation {info.orientation}; boxes are taken as in the displayed image)"
        report.add(
            "size_mismatch",
            f"{raw.where}: declared {raw.declared_size[0]}x{raw.declared_size[1]}, file {size[0]}x{size[1]}{hint}",
        )
    return size


def _to_record(raw: RawImage, size: tuple[int, int], report: ProblemReport) -> ImageRecord:
    width, height = size
    m = len(raw.labels)
    names = raw.box_names or [f"{raw.where}, box #{i}" for i in range(m)]
    boxes = np.asarray(raw.boxes, dtype=np.float64).reshape(-1, 4)
    if raw.normalized:
        boxes = boxes * np.array([width, height, width, height], dtype=np.float64)
    boxes, keep = sanitize_boxes(boxes, raw.labels, width, height, report, names)
    annotations = []
    for i in np.flatnonzero(keep):
        ann = Annotation(
            box=tuple(float(v) for v in boxes[i]),  # type: ignore[arg-type]
            label=int(raw.labels[i]),
            id=raw.ann_ids[i] if raw.ann_ids else None,
            iscrowd=bool(raw.iscrowd[i]) if len(raw.iscrowd) else False,
            difficult=bool(raw.difficult[i]) if len(raw.difficult) else False,
            extra=raw.extras[i] if raw.extras else {},
        )
        if ann.ignore:
            report.add("ignored_box", f"{names[i]}: {'crowd' if ann.iscrowd else 'difficult'} box")
        annotations.append(ann)
    if not annotations:
        report.add("empty_image", f"{raw.where}: no boxes")
    return ImageRecord(raw.path, int(width), int(height), raw.id, annotations, raw.file_name)


def validate_images(raws: Sequence[RawImage], report: ProblemReport, check: ImageCheck = "fast") -> list[ImageRecord]:
    """Probe each image file and sanitise its boxes; skipped records are reported.

    Args:
        raws: what a reader parsed.
        report: receives every problem (raises on defects when ``report.strict``).
        check: ``"fast"`` (header and end marker), ``"full"`` (decode every image),
            or ``"none"`` (trust declared sizes; files are opened only when a size is missing).
    """
    records = []
    seen: set[Path] = set()
    for raw, info in zip(raws, _probe_all(raws, check)):
        if isinstance(info, ImageProblem):
            report.add(info.kind, f"{raw.where}: {info.detail}")
            continue
        if raw.path in seen:
            report.add("duplicate_image", f"{raw.where}: {raw.file_name} already listed")
            continue
        seen.add(raw.path)
        records.append(_to_record(raw, _image_size(raw, info, report), report))
    return records
