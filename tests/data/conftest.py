"""Tiny dataset fixtures written in the test's tmp_path: a few small images and annotation files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def _save_image(path: Path, size: tuple[int, int] = (64, 48), mode: str = "RGB", colour: int = 90) -> Path:
    """Write a ``size = (w, h)`` image of ``mode``; returns its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    if mode == "I;16":
        Image.fromarray(np.full((h, w), 40000, dtype=np.uint16)).save(path)
    else:
        Image.new(mode, size, colour if mode in ("L", "P", "1") else (colour,) * len(mode)).save(path)
    return path


@pytest.fixture
def save_image():
    return _save_image


@pytest.fixture
def coco_dir(tmp_path: Path) -> Path:
    """A COCO json with 3 images: 2 boxes (one crowd, one with an extra field), a negative, category ids 3 and 7."""
    tmp_path = tmp_path / "coco"
    for name in ("a.jpg", "b.jpg", "c.png"):
        _save_image(tmp_path / "images" / name)
    coco = {
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": 64, "height": 48},
            {"id": 2, "file_name": "b.jpg", "width": 64, "height": 48},
            {"id": 5, "file_name": "c.png", "width": 64, "height": 48},
        ],
        "annotations": [
            {
                "id": 10,
                "image_id": 1,
                "category_id": 7,
                "bbox": [4, 5, 10, 20],
                "area": 200,
                "iscrowd": 0,
                "ambiguous_edges": {"left": "blur"},
            },
            {"id": 11, "image_id": 1, "category_id": 3, "bbox": [20, 10, 30, 30], "area": 900, "iscrowd": 1},
            {"id": 12, "image_id": 2, "category_id": 3, "bbox": [0.5, 0.5, 8, 8], "area": 64, "iscrowd": 0},
        ],
        "categories": [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}],
    }
    (tmp_path / "ann.json").write_text(json.dumps(coco))
    return tmp_path


def voc_xml(
    file_name: str, size: tuple[int, int], objects: list[tuple[str, tuple[float, float, float, float], int]]
) -> str:
    """A VOC annotation: objects are ``(name, (xmin, ymin, xmax, ymax), difficult)``."""
    objs = "".join(
        f"<object><name>{n}</name><difficult>{d}</difficult><truncated>0</truncated><bndbox>"
        f"<xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for n, b, d in objects
    )
    return f"<annotation><filename>{file_name}</filename><size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>{objs}</annotation>"


@pytest.fixture
def write_voc():
    def write(root: Path, stem: str, objects, size=(64, 48), image_size=None) -> Path:
        _save_image(root / "JPEGImages" / f"{stem}.jpg", image_size or size)
        xml = root / "Annotations" / f"{stem}.xml"
        xml.parent.mkdir(parents=True, exist_ok=True)
        xml.write_text(voc_xml(f"{stem}.jpg", size, objects))
        return xml

    return write


@pytest.fixture
def voc_dir(tmp_path: Path, write_voc) -> Path:
    """A VOC folder: 2 images, 3 objects (one difficult), classes 'person' and 'car'."""
    tmp_path = tmp_path / "voc"
    write_voc(tmp_path, "000001", [("person", (1, 1, 10, 20), 0), ("car", (11, 5, 40, 30), 1)])
    write_voc(tmp_path, "000002", [("car", (5, 6, 60, 40), 0)])
    return tmp_path


@pytest.fixture
def write_yolo():
    def write(root: Path, split: str, stem: str, lines: list[str] | None, size=(64, 48)) -> Path:
        image = _save_image(root / "images" / split / f"{stem}.jpg", size)
        if lines is not None:
            txt = root / "labels" / split / f"{stem}.txt"
            txt.parent.mkdir(parents=True, exist_ok=True)
            txt.write_text("\n".join(lines) + "\n")
        return image

    return write


@pytest.fixture
def yolo_dir(tmp_path: Path, write_yolo) -> Path:
    """An ultralytics layout: data.yaml with names {0: a, 1: b}; train has 2 images (one negative), val 1."""
    tmp_path = tmp_path / "yolo"
    write_yolo(tmp_path, "train", "x", ["0 0.5 0.5 0.25 0.5", "1 0.25 0.25 0.125 0.25"])
    write_yolo(tmp_path, "train", "y", None)
    write_yolo(tmp_path, "val", "z", ["1 0.5 0.5 0.5 0.5"])
    (tmp_path / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/val\nnames:\n  0: a\n  1: b\n")
    return tmp_path
