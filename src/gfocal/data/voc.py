"""Pascal VOC xml: ``Annotations/*.xml`` + ``JPEGImages/``, or any folder of xml files next to images.

VOC coordinates are 1-based inclusive pixel indices; like detectron2 we
subtract 1 from ``xmin``/``ymin`` so that ``(1, 1, W, H)`` covers the whole
image as ``(0, 0, W, H)``. ``difficult`` is kept (ignored in training, as in
the references); ``truncated``, ``occluded`` and ``pose`` go to ``extra``.
Class names come from ``class_names``, else a ``classes.txt``/``labels.txt``
in the folder, else every name found, sorted (the VOC order for VOC).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gfocal.data.image_io import ImageCheck
from gfocal.data.problems import DatasetError, ProblemReport
from gfocal.data.records import DatasetRecords
from gfocal.data.validation import RawImage, validate_images

__all__ = ["read_voc", "read_class_file"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
_CLASS_FILES = ("classes.txt", "labels.txt", "class_names.txt")
_EXTRA_TAGS = ("truncated", "occluded", "pose")


def read_class_file(folder: Path) -> list[str] | None:
    """Class names, one per line, from the first class file found in ``folder``; None if none."""
    for name in _CLASS_FILES:
        if (folder / name).is_file():
            try:
                text = (folder / name).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise DatasetError(f"{folder / name}: cannot read the class names ({exc})") from exc
            return [line.strip() for line in text.splitlines() if line.strip()]
    return None


def _xml_files(root: Path, split: str | None) -> tuple[list[Path], Path]:
    """The xml files to read and the folder they are in."""
    ann_dir = root / "Annotations" if (root / "Annotations").is_dir() else root
    if split is None:
        return sorted(ann_dir.glob("*.xml")), ann_dir
    split_file = root / "ImageSets" / "Main" / f"{split}.txt"
    if not split_file.is_file():
        raise DatasetError(f"{root}: split {split!r} requested but {split_file} does not exist")
    stems = [line.split()[0] for line in split_file.read_text().splitlines() if line.strip()]
    return [ann_dir / f"{s}.xml" for s in stems], ann_dir


def _find_image(folder: Path, file_name: str | None, stem: str) -> tuple[Path, str]:
    if file_name and (folder / file_name).is_file():
        return folder / file_name, file_name
    for suffix in IMAGE_SUFFIXES + tuple(s.upper() for s in IMAGE_SUFFIXES):
        if (folder / f"{stem}{suffix}").is_file():
            return folder / f"{stem}{suffix}", f"{stem}{suffix}"
    name = file_name or f"{stem}.jpg"
    return folder / name, name


def _text(node: ET.Element, tag: str) -> str | None:
    child = node.find(tag)
    return child.text.strip() if child is not None and child.text else None


def _number(node: ET.Element | None, tag: str) -> float:
    value = _text(node, tag) if node is not None else None
    return float(value) if value is not None else float("nan")


def _parse_xml(xml_path: Path, images_dir: Path, report: ProblemReport) -> tuple[RawImage, list[str]] | None:
    """The image record (labels still unset) and the class name of each object."""
    try:
        tree = ET.parse(xml_path).getroot()
    except (ET.ParseError, OSError) as exc:
        report.add("unreadable_annotation", f"{xml_path}: {exc}")
        return None
    file_name = _text(tree, "filename")
    path, file_name = _find_image(images_dir, file_name, xml_path.stem)
    size = tree.find("size")
    where = f"{xml_path} ({file_name})"
    declared = None
    if size is not None and _text(size, "width") and _text(size, "height"):
        try:
            declared = (int(_number(size, "width")), int(_number(size, "height")))
        except (ValueError, OverflowError):
            report.add(
                "malformed_annotation",
                f"{where}: <size> {_text(size, 'width')!r}x{_text(size, 'height')!r} is not a number",
            )
            return None
    raw = RawImage(path, file_name, xml_path.stem, where, declared)
    names, boxes, difficult, extras, ann_ids, box_names = [], [], [], [], [], []
    for i, obj in enumerate(tree.findall("object")):
        name, bnd = _text(obj, "name") or "", obj.find("bndbox")
        try:
            box = [_number(bnd, "xmin") - 1.0, _number(bnd, "ymin") - 1.0, _number(bnd, "xmax"), _number(bnd, "ymax")]
        except ValueError as exc:
            report.add("malformed_annotation", f"{where}, object #{i} ({name!r}): <bndbox> is not numbers ({exc})")
            continue
        names.append(name)
        boxes.append(box)
        difficult.append(_text(obj, "difficult") in ("1", "true", "True"))
        extras.append({t: _text(obj, t) for t in _EXTRA_TAGS if _text(obj, t) is not None})
        ann_ids.append(f"{xml_path.name}#{i}")
        box_names.append(f"{where}, object #{i} ({name!r})")
    raw.boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    raw.difficult = np.asarray(difficult, dtype=bool)
    raw.iscrowd = np.zeros(len(names), dtype=bool)
    raw.extras = extras
    raw.ann_ids = ann_ids
    raw.box_names = box_names
    return raw, names


def read_voc(
    path: str | os.PathLike[str],
    images_dir: str | os.PathLike[str] | None = None,
    report: ProblemReport | None = None,
    check_images: ImageCheck = "fast",
    split: str | None = None,
    class_names: Sequence[str] | None = None,
) -> DatasetRecords:
    """Read and validate a VOC folder (``split`` picks ``ImageSets/Main/<split>.txt``)."""
    root = Path(path)
    report = report if report is not None else ProblemReport()
    xml_files, ann_dir = _xml_files(root, split)
    if not xml_files:
        raise DatasetError(f"{root}: no .xml annotation files found (expected Annotations/*.xml or *.xml)")
    if images_dir is None:
        images_dir = root / "JPEGImages" if (root / "JPEGImages").is_dir() else ann_dir
    parsed = [p for p in (_parse_xml(x, Path(images_dir), report) for x in xml_files) if p is not None]
    names = list(class_names) if class_names is not None else read_class_file(root)
    if names is None:
        names = sorted({n for _, objs in parsed for n in objs})
    label_of = {n: i for i, n in enumerate(names)}
    for raw, objs in parsed:
        for i, name in enumerate(objs):
            if name not in label_of:
                raise DatasetError(f"{raw.box_names[i]}: unknown class {name!r}; known classes {names}")
        raw.labels = np.asarray([label_of[n] for n in objs], dtype=np.int64)
    records = validate_images([raw for raw, _ in parsed], report, check_images)
    return DatasetRecords(records, names, root, "voc", report)
