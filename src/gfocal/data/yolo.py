"""YOLO txt labels, laid out as ultralytics does: ``images/`` + ``labels/`` + a data yaml.

Each label line is ``class cx cy w h`` with coordinates as fractions of the
image size; segment lines (``class x1 y1 x2 y2 ...``) become the polygon's box.
The label of ``.../images/<split>/a.jpg`` is ``.../labels/<split>/a.txt``; a
missing label file means a negative image. The data yaml holds ``path`` (the
root, relative to the yaml), ``train``/``val``/``test`` (a folder, a txt list
of images, or a list of either) and ``names`` (a list or ``{id: name}``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from gfocal.data.image_io import ImageCheck
from gfocal.data.problems import DatasetError, ProblemReport
from gfocal.data.records import DatasetRecords
from gfocal.data.validation import RawImage, validate_images
from gfocal.data.voc import IMAGE_SUFFIXES, read_class_file

__all__ = ["read_yolo", "read_yolo_yaml", "label_path"]


def label_path(image_path: Path) -> Path:
    """``.../images/x/a.jpg`` → ``.../labels/x/a.txt`` (last ``images`` component), else ``a.txt`` beside it."""
    parts = list(image_path.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts).with_suffix(".txt")
    return image_path.with_suffix(".txt")


def read_yolo_yaml(path: Path) -> dict[str, Any]:
    """The parsed data yaml, with ``names`` normalised to a list and ``path`` resolved."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise DatasetError(f"{path}: cannot read the data yaml ({exc})") from exc
    if not isinstance(data, dict) or "names" not in data:
        raise DatasetError(f"{path}: a YOLO data yaml needs 'names' (a list or a {{id: name}} mapping)")
    names = data["names"]
    if isinstance(names, dict):
        names = {int(k) if isinstance(k, str) and k.isdigit() else k: v for k, v in names.items()}
        if not all(isinstance(k, int) for k in names) or sorted(names) != list(range(len(names))):
            raise DatasetError(f"{path}: 'names' ids must be the integers 0..{len(names) - 1}, got {list(names)}")
        names = [names[k] for k in sorted(names)]
    if not isinstance(names, list) or not names:
        raise DatasetError(f"{path}: 'names' must be a non-empty list or {{id: name}} mapping, got {names!r}")
    data["names"] = [str(n) for n in names]
    for key in ("path", "train", "val", "test"):
        entries = data.get(key) if isinstance(data.get(key), list) and key != "path" else [data.get(key)]
        if not all(entry is None or isinstance(entry, str) for entry in entries):
            raise DatasetError(f"{path}: '{key}' must be a path or a list of paths, got {data[key]!r}")
    root = Path(data.get("path") or ".")
    data["path"] = root if root.is_absolute() else (path.parent / root)
    return data


def _list_images(entry: Path) -> list[Path]:
    if entry.is_dir():
        return sorted(p for p in entry.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if entry.suffix == ".txt" and entry.is_file():
        lines = [line.strip() for line in entry.read_text(encoding="utf-8").splitlines() if line.strip()]
        return [Path(line) if Path(line).is_absolute() else entry.parent / line for line in lines]
    raise DatasetError(f"{entry}: split entry is neither a folder of images nor a .txt list of images")


def _parse_labels(
    txt: Path, text: str, num_classes: int, report: ProblemReport, where: str
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(boxes float64 [M, 4] normalised xyxy, labels int64 [M], names)`` from one label file."""
    boxes, labels, names = [], [], []
    for lineno, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        name = f"{txt}:{lineno} ({where})"
        try:
            cls_float, values = float(parts[0]), np.asarray(parts[1:], dtype=np.float64)
        except ValueError:
            report.add("malformed_annotation", f"{name}: not numbers: {line.strip()!r}")
            continue
        if not cls_float.is_integer() or len(values) < 4 or (len(values) > 4 and len(values) % 2):
            report.add("malformed_annotation", f"{name}: expected 'class cx cy w h' or a polygon, got {line.strip()!r}")
            continue
        if not 0 <= int(cls_float) < num_classes:
            raise DatasetError(
                f"{name}: unknown class id {int(cls_float)}; the data yaml names {num_classes} classes (0..{num_classes - 1})"
            )
        if len(values) == 4:
            cx, cy, w, h = values
            box = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
        else:
            xy = values.reshape(-1, 2)  # [P, 2] polygon
            box = [*xy.min(axis=0), *xy.max(axis=0)]
        boxes.append(box)
        labels.append(int(cls_float))
        names.append(name)
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4), np.asarray(labels, dtype=np.int64), names


def _raw_images(images: list[Path], root: Path, num_classes: int, report: ProblemReport) -> list[RawImage]:
    raws = []
    for image in images:
        file_name = Path(os.path.relpath(image, root)).as_posix()
        raw = RawImage(image, file_name, image.stem, f"{image}", normalized=True)
        txt = label_path(image)
        if txt.is_file():
            try:
                text = txt.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                # Training on the image without its boxes would teach "background": skip it.
                report.add("unreadable_annotation", f"{txt} ({image.name}): {exc}")
                continue
            raw.boxes, raw.labels, raw.box_names = _parse_labels(txt, text, num_classes, report, image.name)
        elif image.is_file():
            report.add("missing_label_file", f"{image}: no label file {txt}")
        raw.iscrowd = np.zeros(len(raw.labels), dtype=bool)
        raw.difficult = np.zeros(len(raw.labels), dtype=bool)
        raws.append(raw)
    return raws


def read_yolo(
    path: str | os.PathLike[str],
    split: str | None = None,
    report: ProblemReport | None = None,
    check_images: ImageCheck = "fast",
    class_names: Sequence[str] | None = None,
) -> DatasetRecords:
    """Read and validate a YOLO dataset from its data yaml or from a folder with ``images/`` and ``labels/``.

    Args:
        path: the data yaml, or a folder (class names then from ``class_names``,
            a ``classes.txt``, or ``data.yaml``/``dataset.yaml`` inside it).
        split: the yaml key to read (``"train"``, ``"val"``, ``"test"``); default
            ``"train"``. Ignored for a folder.
    """
    path = Path(path)
    report = report if report is not None else ProblemReport()
    if path.is_dir():
        for name in ("data.yaml", "dataset.yaml"):
            if (path / name).is_file():
                return read_yolo(path / name, split, report, check_images, class_names)
        names = list(class_names) if class_names is not None else read_class_file(path)
        if names is None:
            raise DatasetError(
                f"{path}: YOLO folder without class names (add classes.txt or a data.yaml, or pass class_names)"
            )
        images, root = _list_images(path / "images" if (path / "images").is_dir() else path), path
    else:
        data = read_yolo_yaml(path)
        names, root, split = list(class_names or data["names"]), Path(data["path"]), split or "train"
        if not data.get(split):
            raise DatasetError(
                f"{path}: no {split!r} entry (has {[k for k in ('train', 'val', 'test') if data.get(k)]})"
            )
        entries = data[split] if isinstance(data[split], list) else [data[split]]
        images = [img for entry in entries for img in _list_images(root / entry)]
    records = validate_images(_raw_images(images, root, len(names), report), report, check_images)
    return DatasetRecords(records, names, path, "yolo", report)
