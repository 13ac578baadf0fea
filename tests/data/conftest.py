"""Tiny dataset fixtures written in the test's tmp_path (with :mod:`support.files`): a few small images and
annotation files in COCO, VOC and YOLO layouts."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import files

SIZE = (64, 48)  # (w, h) of every image here


@pytest.fixture
def coco_dir(tmp_path: Path) -> Path:
    """A COCO json with 3 images: 2 boxes (one crowd, one with an extra field), a negative, category ids 3 and 7."""
    tmp_path = tmp_path / "coco"
    for name in ("a.jpg", "b.jpg", "c.png"):
        files.image(tmp_path / "images" / name, SIZE)
    files.coco(
        tmp_path / "ann.json",
        images=[
            {"id": 1, "file_name": "a.jpg", "width": 64, "height": 48},
            {"id": 2, "file_name": "b.jpg", "width": 64, "height": 48},
            {"id": 5, "file_name": "c.png", "width": 64, "height": 48},
        ],
        annotations=[
            {**files.box([4, 5, 10, 20], 10, 1, 7), "area": 200, "iscrowd": 0, "ambiguous_edges": {"left": "blur"}},
            {**files.box([20, 10, 30, 30], 11, 1, 3), "area": 900, "iscrowd": 1},
            {**files.box([0.5, 0.5, 8, 8], 12, 2, 3), "area": 64, "iscrowd": 0},
        ],
        categories=[{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}],
    )
    return tmp_path


@pytest.fixture
def write_voc():
    def write(root: Path, stem: str, objects, size=SIZE, image_size=None) -> Path:
        files.image(root / "JPEGImages" / f"{stem}.jpg", image_size or size)
        xml = root / "Annotations" / f"{stem}.xml"
        xml.parent.mkdir(parents=True, exist_ok=True)
        xml.write_text(files.voc_xml(f"{stem}.jpg", size, objects))
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
    def write(root: Path, split: str, stem: str, lines: list[str] | None, size=SIZE) -> Path:
        image = files.image(root / "images" / split / f"{stem}.jpg", size)
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
