"""``load_dataset``: one entry point for COCO, VOC and YOLO that detects the format from the path."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from gfocal.data.coco import read_coco
from gfocal.data.image_io import ImageCheck
from gfocal.data.problems import DatasetError, ProblemReport
from gfocal.data.records import DatasetRecords
from gfocal.data.voc import read_voc
from gfocal.data.yolo import read_yolo

__all__ = ["load_dataset", "detect_format"]


def detect_format(path: str | os.PathLike[str]) -> str:
    """``"coco"`` for a .json file, ``"yolo"`` for a .yaml/.yml file or a folder with ``labels/``,
    ``"voc"`` for a folder with ``Annotations/`` or .xml files. Raises :class:`DatasetError`."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".json":
            return "coco"
        if suffix in (".yaml", ".yml"):
            return "yolo"
        raise DatasetError(f"{path}: unknown dataset file type {suffix!r} (expected a COCO .json or a YOLO .yaml)")
    if (path / "Annotations").is_dir() or any(path.glob("*.xml")):
        return "voc"
    if (path / "labels").is_dir() or (path / "data.yaml").is_file() or (path / "dataset.yaml").is_file():
        return "yolo"
    raise DatasetError(f"{path}: cannot tell the format (expected Annotations/ or *.xml for VOC, labels/ for YOLO)")


def load_dataset(
    path: str | os.PathLike[str],
    images_dir: str | os.PathLike[str] | None = None,
    strict: bool = False,
    split: str | None = None,
    *,
    class_names: Sequence[str] | None = None,
    check_images: ImageCheck = "fast",
    warn: bool = True,
) -> DatasetRecords:
    """Load and validate a COCO, Pascal VOC or YOLO dataset.

    Args:
        path: a COCO .json, a YOLO data .yaml, or a VOC/YOLO folder.
        images_dir: where the images are (COCO, VOC); guessed when None.
        strict: raise :class:`DatasetError` on the first defect instead of repairing it.
        split: YOLO yaml key (default ``"train"``) or VOC ``ImageSets/Main/<split>.txt``.
        class_names: the class list for VOC/YOLO folders (an unknown class is then an error).
        check_images: ``"fast"`` (header + end marker), ``"full"`` (decode all), ``"none"``.
        warn: issue one :class:`DatasetWarning` per defect kind found.

    Returns:
        the records; ``records.problems`` holds the counts and examples.
    """
    fmt = detect_format(path)
    report = ProblemReport(strict=strict)
    if fmt == "coco":
        records = read_coco(path, images_dir, report, check_images)
    elif fmt == "voc":
        records = read_voc(path, images_dir, report, check_images, split, class_names)
    else:
        records = read_yolo(path, split, report, check_images, class_names)
    if warn:
        report.emit_warnings(str(path))
    return records
