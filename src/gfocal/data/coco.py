"""COCO json: reader and writer.

Reader: ``bbox`` ``[x, y, w, h]`` becomes xyxy; category ids (any, with gaps)
become contiguous labels in increasing id order; ``iscrowd`` and a
``difficult``/``ignore`` flag are kept; any other annotation key except
``segmentation`` goes to ``Annotation.extra`` (e.g. ``ambiguous_edges``).
Images are looked for under ``images_dir`` or, by default, next to the json,
in ``images/``, or in the COCO layout ``annotations/instances_val2017.json`` →
``val2017/``.

Writer: category id = label + 1; image and annotation ids kept when they are
unique ints; ``iscrowd`` = crowd or difficult, so pycocotools ignores both.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gfocal import __version__
from gfocal.data.image_io import ImageCheck
from gfocal.data.problems import DatasetError, ProblemReport
from gfocal.data.records import DatasetRecords
from gfocal.data.validation import RawImage, validate_images
from gfocal.fileio import atomic_write_json

__all__ = ["read_coco", "write_coco", "coco_image_ids"]

# Keys read into Annotation fields; the rest, COCO's own "area" included, stay in Annotation.extra.
_STANDARD_KEYS = {"id", "image_id", "category_id", "bbox", "iscrowd", "segmentation", "difficult", "ignore"}


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DatasetError(f"{path}: file not found") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc})") from exc
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("images"), list)
        or not isinstance(data.get("categories"), list)
    ):
        raise DatasetError(f"{path}: not a COCO detection file (needs 'images' and 'categories' lists)")
    return data


def _image_dir_candidates(json_path: Path) -> list[Path]:
    parent = json_path.parent
    split = json_path.stem.split("_")[-1]  # instances_val2017 -> val2017
    return [
        parent,
        parent / "images",
        parent / split,
        parent.parent / split,
        parent.parent / "images" / split,
        parent.parent / "images",
    ]


def _resolve_images_dir(json_path: Path, images: list[dict[str, Any]]) -> Path:
    """The first candidate folder that holds the first listed image; the json's folder otherwise."""
    names = [img["file_name"] for img in images[:1] if isinstance(img, dict) and isinstance(img.get("file_name"), str)]
    for folder in _image_dir_candidates(json_path):
        if names and (folder / names[0]).is_file():
            return folder
    return json_path.parent


def _categories(path: Path, categories: list[Any]) -> tuple[list[int], list[str]]:
    try:
        cats = sorted((int(c["id"]), str(c.get("name", c["id"]))) for c in categories)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise DatasetError(f"{path}: malformed 'categories' entry ({exc!r})") from exc
    ids = [c for c, _ in cats]
    if len(set(ids)) != len(ids):
        raise DatasetError(f"{path}: duplicate category ids {sorted(i for i in ids if ids.count(i) > 1)}")
    return ids, [n for _, n in cats]


def _parse_annotation(
    ann: Any, label_of: dict[int, int], path: Path, report: ProblemReport
) -> tuple[Any, list[float], int] | None:
    """``(image_id, xyxy, label)``, or None when malformed (reported)."""
    where = f"{path}, annotation id={ann.get('id') if isinstance(ann, dict) else '?'}"
    try:
        if not isinstance(ann["bbox"], (list, tuple)):  # float() of each character of "1234" would "work"
            raise TypeError(f"bbox is a {type(ann['bbox']).__name__}, expected [x, y, w, h]")
        x, y, w, h = (float(v) for v in ann["bbox"])
        category = int(ann["category_id"])
        image_id = ann["image_id"]
        hash(image_id)
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        report.add("malformed_annotation", f"{where}: missing or malformed bbox/category_id/image_id ({exc!r})")
        return None
    if category not in label_of:
        raise DatasetError(
            f"{where}, image id={image_id}: unknown category_id {category}; known ids {sorted(label_of)}"
        )
    return image_id, [x, y, x + w, y + h], label_of[category]


def read_coco(
    path: str | os.PathLike[str],
    images_dir: str | os.PathLike[str] | None = None,
    report: ProblemReport | None = None,
    check_images: ImageCheck = "fast",
) -> DatasetRecords:
    """Read and validate a COCO detection json (see the module docstring for the rules)."""
    path = Path(path)
    report = report if report is not None else ProblemReport()
    data = _load_json(path)
    category_ids, class_names = _categories(path, data["categories"])
    label_of = {c: i for i, c in enumerate(category_ids)}
    folder = Path(images_dir) if images_dir is not None else _resolve_images_dir(path, data["images"])
    raws: dict[Any, RawImage] = {}
    for img in data["images"]:
        if (
            not isinstance(img, dict)
            or not isinstance(img.get("id"), (int, str))
            or not isinstance(img.get("file_name"), str)
        ):
            report.add(
                "malformed_annotation",
                f"{path}, image entry {str(img)[:80]}: needs an int or str 'id' and a 'file_name'",
            )
            continue
        where = f"{path}, image id={img['id']} ({img['file_name']})"
        if img["id"] in raws:
            report.add("duplicate_image", f"{where}: image id listed twice")
            continue
        try:
            size = (int(img["width"]), int(img["height"])) if "width" in img and "height" in img else None
        except (TypeError, ValueError, OverflowError):
            report.add(
                "malformed_annotation", f"{where}: width/height {img['width']!r}x{img['height']!r} are not numbers"
            )
            continue
        raws[img["id"]] = RawImage(folder / img["file_name"], img["file_name"], img["id"], where, size)
    annotations = data.get("annotations", [])
    if not isinstance(annotations, list):
        raise DatasetError(f"{path}: 'annotations' must be a list, got {type(annotations).__name__}")
    per_image: dict[Any, list[tuple[dict[str, Any], list[float], int]]] = {}
    for ann in annotations:
        parsed = _parse_annotation(ann, label_of, path, report)
        if parsed is None:
            continue
        image_id, box, label = parsed
        if image_id not in raws:
            report.add(
                "orphan_annotation", f"{path}, annotation id={ann.get('id')}: image_id {image_id} is not in 'images'"
            )
            continue
        per_image.setdefault(image_id, []).append((ann, box, label))
    for image_id, anns in per_image.items():
        _fill(raws[image_id], anns)
    records = validate_images(list(raws.values()), report, check_images)
    return DatasetRecords(records, class_names, path, "coco", report, category_ids)


def _fill(raw: RawImage, anns: list[tuple[dict[str, Any], list[float], int]]) -> None:
    raw.boxes = np.asarray([box for _, box, _ in anns], dtype=np.float64)
    raw.labels = np.asarray([label for _, _, label in anns], dtype=np.int64)
    raw.ann_ids = [ann.get("id") for ann, _, _ in anns]
    difficult = np.asarray([bool(ann.get("difficult") or ann.get("ignore")) for ann, _, _ in anns])
    # A file we wrote marks difficult boxes iscrowd too, for pycocotools; read them back as difficult only.
    raw.iscrowd = np.asarray([bool(ann.get("iscrowd")) for ann, _, _ in anns]) & ~difficult
    raw.difficult = difficult
    raw.extras = [_extra_fields(ann) for ann, _, _ in anns]
    raw.box_names = [f"{raw.where}, annotation id={ann.get('id')}" for ann, _, _ in anns]


def _extra_fields(ann: dict[str, Any]) -> dict[str, Any]:
    """The annotation's non-standard fields; an ``area`` that is not a positive number is left out, so
    evaluation falls back to the box area for it (see :attr:`Annotation.evaluation_area`)."""
    extra = {k: v for k, v in ann.items() if k not in _STANDARD_KEYS}
    area = extra.get("area")
    if "area" in extra and not (isinstance(area, (int, float)) and not isinstance(area, bool) and 0 < area < math.inf):
        del extra["area"]
    return extra


def _unique_ints(values: Sequence[Any]) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool) for v in values) and len(set(values)) == len(values)


def coco_image_ids(records: DatasetRecords) -> list[int]:
    """The COCO image id :func:`write_coco` gives each record: its own id if all are unique ints, else index + 1."""
    ids = [img.id for img in records.images]
    return list(ids) if _unique_ints(ids) else list(range(1, len(ids) + 1))


def _file_name(image_path: Path, json_dir: Path) -> str:
    try:
        return Path(os.path.relpath(image_path.resolve(), json_dir.resolve())).as_posix()
    except ValueError:  # another drive on Windows
        return image_path.resolve().as_posix()


def write_coco(records: DatasetRecords, path: str | os.PathLike[str]) -> Path:
    """Write ``records`` as a COCO detection json, atomically; returns the path.

    ``file_name`` is the image path relative to the json's folder, so
    ``load_dataset(path)`` finds the images again. Boxes are written as
    ``[x, y, w, h]``; ``extra`` fields are written back, and ``area`` is the one read from a COCO
    file (e.g. a segment's) or else ``w * h``.
    """
    path = Path(path)
    image_ids = coco_image_ids(records)
    all_ann_ids = [a.id for img in records.images for a in img.annotations]
    keep_ann_ids = _unique_ints(all_ann_ids)
    images, annotations = [], []
    for image_id, img in zip(image_ids, records.images):
        images.append(
            {"id": image_id, "file_name": _file_name(img.path, path.parent), "width": img.width, "height": img.height}
        )
        for ann in img.annotations:
            x0, y0, x1, y1 = ann.box
            entry = {**ann.extra, "id": ann.id if keep_ann_ids else len(annotations) + 1, "image_id": image_id}
            entry.update(category_id=ann.label + 1, bbox=[x0, y0, x1 - x0, y1 - y0], area=ann.evaluation_area)
            entry["iscrowd"] = int(ann.iscrowd or ann.difficult)
            if ann.difficult:
                entry["difficult"] = 1
            annotations.append(entry)
    categories = [{"id": i + 1, "name": name, "supercategory": "none"} for i, name in enumerate(records.class_names)]
    info = {
        "description": f"written by gfocal {__version__} from {records.format} {records.root}",
        "version": __version__,
    }
    coco = {"info": info, "licenses": [], "images": images, "annotations": annotations, "categories": categories}
    return atomic_write_json(path, coco)
