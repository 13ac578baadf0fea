"""Tiny fixtures for the analysis tests: a synthetic COCO set and an untrained small model's weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gfocal.data.synthetic import make_synthetic_dataset
from gfocal.models import gfl_small, save_weights
from support import files

SIZE = 64


@pytest.fixture(scope="session")
def tiny_coco(tmp_path_factory) -> Path:
    """4 images of 64 px with 1-3 shapes each, some blurred or occluded (COCO json)."""
    root = tmp_path_factory.mktemp("tiny_coco")
    return make_synthetic_dataset(
        root, num_images=4, image_size=SIZE, size_range=(12, 40), objects_per_image=(1, 3), blur_fraction=0.5, seed=3
    )


@pytest.fixture(scope="session")
def untrained_weights(tmp_path_factory) -> Path:
    """An untrained gfl_small for 4 classes (the synthetic set's) at 64 px."""
    torch.manual_seed(0)
    model = gfl_small(4, min_size=SIZE, max_size=SIZE, class_names=("rectangle", "ellipse", "triangle", "cross"))
    path = tmp_path_factory.mktemp("weights") / "untrained.safetensors"
    save_weights(model, path)
    return path


def _objects(coco_json: Path):
    """(file_name, width, height, [(class name, x0, y0, x1, y1)]) per image of a COCO file."""
    import json

    coco = json.loads(coco_json.read_text())
    names = {c["id"]: c["name"] for c in coco["categories"]}
    for image in coco["images"]:
        boxes = [
            (
                names[a["category_id"]],
                a["bbox"][0],
                a["bbox"][1],
                a["bbox"][0] + a["bbox"][2],
                a["bbox"][1] + a["bbox"][3],
            )
            for a in coco["annotations"]
            if a["image_id"] == image["id"]
        ]
        yield image["file_name"], image["width"], image["height"], boxes


@pytest.fixture(scope="session")
def tiny_voc(tiny_coco: Path, tmp_path_factory) -> Path:
    """The tiny synthetic set as a Pascal VOC folder (JPEGImages/ + Annotations/, 1-based xmin/ymin)."""
    import shutil

    root = tmp_path_factory.mktemp("tiny_voc")
    (root / "JPEGImages").mkdir()
    (root / "Annotations").mkdir()
    for file_name, width, height, boxes in _objects(tiny_coco):
        stem = Path(file_name).stem
        shutil.copy(tiny_coco.parent / file_name, root / "JPEGImages" / f"{stem}.png")
        objects = [(n, (x0 + 1, y0 + 1, x1, y1), 0) for n, x0, y0, x1, y1 in boxes]  # VOC is 1-based
        (root / "Annotations" / f"{stem}.xml").write_text(files.voc_xml(f"{stem}.png", (width, height), objects))
    return root


@pytest.fixture(scope="session")
def tiny_yolo(tiny_coco: Path, tmp_path_factory) -> Path:
    """The tiny synthetic set as an ultralytics YOLO folder with data.yaml."""
    import shutil

    root = tmp_path_factory.mktemp("tiny_yolo")
    classes = ["rectangle", "ellipse", "triangle", "cross"]
    for file_name, width, height, boxes in _objects(tiny_coco):
        stem = Path(file_name).stem
        (root / "images" / "train").mkdir(parents=True, exist_ok=True)
        (root / "labels" / "train").mkdir(parents=True, exist_ok=True)
        shutil.copy(tiny_coco.parent / file_name, root / "images" / "train" / f"{stem}.png")
        lines = [
            f"{classes.index(n)} {(x0 + x1) / 2 / width} {(y0 + y1) / 2 / height} {(x1 - x0) / width} {(y1 - y0) / height}"
            for n, x0, y0, x1, y1 in boxes
        ]
        (root / "labels" / "train" / f"{stem}.txt").write_text("\n".join(lines) + "\n")
    names = "".join(f"  {i}: {n}\n" for i, n in enumerate(classes))
    (root / "data.yaml").write_text(f"path: .\ntrain: images/train\nval: images/train\nnames:\n{names}")
    return root
