"""Dataset summary: counts, COCO size buckets, problems; text, dict and PNG outputs."""

from __future__ import annotations

import json

from PIL import Image

from gfocal.data import load_dataset
from gfocal.data.summary import plot_summary, summarize, summarize_dataset


def test_summary_counts_and_outputs(coco_dir, tmp_path):
    data = json.loads((coco_dir / "ann.json").read_text())
    data["annotations"].append({"id": 13, "image_id": 2, "category_id": 7, "bbox": [-5, 0, 40, 40], "iscrowd": 0})
    (coco_dir / "ann.json").write_text(json.dumps(data))
    records = load_dataset(coco_dir / "ann.json", warn=False)
    summary = summarize(records)
    assert summary.num_images == 3 and summary.num_boxes == 4 and summary.images_without_boxes == 1
    assert summary.boxes_per_class == {"cat": 2, "dog": 2} and summary.ignored_boxes == 1
    assert summary.sizes == {"small": 3, "medium": 1, "large": 0}  # 10x20, 30x30, 8x8 < 32² <= 35x40 (clipped)
    assert summary.problems["warnings"] == {"clipped_box": 1}
    text = summary.to_text()
    assert "3 images, 4 boxes, 2 classes" in text and "boxes partly outside" in text and "annotation id=13" in text
    json.dumps(summary.to_dict())
    png = plot_summary(summary, tmp_path / "out" / "summary.png")
    assert Image.open(png).size == (1100, 420)


def test_summarize_dataset_for_the_cli(yolo_dir, tmp_path):
    summary = summarize_dataset(yolo_dir / "data.yaml", tmp_path / "s.png", split="train")
    assert summary.num_images == 2 and summary.boxes_per_class == {"a": 1, "b": 1} and (tmp_path / "s.png").is_file()
    assert summary.problems["notes"] == {"missing_label_file": 1, "empty_image": 1}
