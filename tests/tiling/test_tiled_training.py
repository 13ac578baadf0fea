"""Tiled training: random tiles biased towards objects, the visible-fraction rule, gfocal train --tile."""

import json
import random

import numpy as np
import pytest
import torch
from PIL import Image

from gfocal.cli.main import main
from gfocal.data import load_dataset
from gfocal.data.tiles import TileDataset, sample_window

WIDTH, HEIGHT = 640, 480
BOXES = [[100, 100, 140, 130], [300, 200, 330, 240], [600, 440, 630, 470]]


@pytest.fixture()
def large_dataset(tmp_path):
    """Two 640 x 480 images, each with three boxes, as COCO json; the pixels are a gradient."""
    pixels = np.broadcast_to((np.arange(WIDTH) // 3).astype(np.uint8)[None, :, None], (HEIGHT, WIDTH, 3))
    images, annotations = [], []
    for index in range(2):
        Image.fromarray(np.ascontiguousarray(pixels)).save(tmp_path / f"{index}.png")
        images.append({"id": index + 1, "file_name": f"{index}.png", "width": WIDTH, "height": HEIGHT})
        for x0, y0, x1, y1 in BOXES:
            bbox = [x0, y0, x1 - x0, y1 - y0]
            annotations.append({"id": len(annotations) + 1, "image_id": index + 1, "category_id": 1, "bbox": bbox})
            annotations[-1] |= {"area": bbox[2] * bbox[3], "iscrowd": 0}
    categories = [{"id": 1, "name": "thing"}]
    path = tmp_path / "train.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def test_object_bias_one_always_holds_a_box_centre():
    random.seed(0)
    boxes = torch.tensor(BOXES, dtype=torch.float32)
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    for _ in range(200):
        x0, y0, x1, y1 = sample_window(HEIGHT, WIDTH, 128, boxes, object_bias=1.0)
        assert (x1 - x0, y1 - y0) == (128, 128) and 0 <= x0 and x1 <= WIDTH and 0 <= y0 and y1 <= HEIGHT
        inside = (centres[:, 0] >= x0) & (centres[:, 0] < x1) & (centres[:, 1] >= y0) & (centres[:, 1] < y1)
        assert inside.any()


def test_no_bias_covers_the_image():
    random.seed(0)
    starts = {sample_window(HEIGHT, WIDTH, 128, torch.tensor(BOXES, dtype=torch.float32), 0.0)[0] for _ in range(300)}
    assert min(starts) < 50 and max(starts) > WIDTH - 128 - 50


def test_image_smaller_than_the_tile_is_taken_whole():
    assert sample_window(100, 80, 128, torch.zeros(0, 4), 0.5) == (0, 0, 80, 100)


def test_tiles_per_epoch_follow_the_tiling_and_boxes_follow_the_tile(large_dataset):
    records = load_dataset(large_dataset)
    dataset = TileDataset(records, 256, None, overlap=0.2, object_bias=1.0, min_visible=0.2)
    assert len(dataset) == 2 * 3 * 3  # each 640 x 480 image: 3 columns x 3 rows of 256 px at overlap 0.2
    random.seed(1)
    for item in range(len(dataset)):
        image, target = dataset[item]
        assert image.shape == (3, 256, 256) and target["image_id"] == item // 9
        boxes = target["boxes"]
        assert len(boxes) >= 1  # a box's centre is in the tile: at least a quarter of that box is
        assert (boxes >= 0).all() and (boxes <= 256).all() and (boxes[:, 2:] - boxes[:, :2] >= 1).all()
        # The pixels are x // 3: the tile's first column tells where it was cut, and so where the boxes go.
        x0 = int(image[0, 0, 0]) * 3
        assert any(abs(b[0] + x0 - ref[0]) <= 3 or b[0] == 0 for b in boxes.tolist() for ref in BOXES)


def test_a_box_mostly_outside_the_tile_is_dropped(large_dataset, monkeypatch):
    records = load_dataset(large_dataset)
    # A window at (120, 0): the first box [100, 140] keeps 20 of its 40 px of width.
    monkeypatch.setattr("gfocal.data.tiles.sample_window", lambda *args: (120, 0, 376, 256))
    kept = TileDataset(records, 256, min_visible=0.4)[0][1]["boxes"]
    dropped = TileDataset(records, 256, min_visible=0.6)[0][1]["boxes"]
    assert kept.tolist() == [[0, 100, 20, 130], [180, 200, 210, 240]]  # the second box lies whole inside
    assert dropped.tolist() == [[180, 200, 210, 240]]


def test_cached_image_is_not_changed_by_transforms(large_dataset):
    records = load_dataset(large_dataset)

    def scribble(image, target):
        image[:] = 0  # an in-place transform
        return image, target

    dataset = TileDataset(records, 256, scribble, object_bias=0.0)
    dataset[0]
    assert dataset._decoded(0).float().mean() > 0


@pytest.mark.slow
def test_train_on_tiles_and_validate_on_whole_images(large_dataset, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--data", str(large_dataset), "--val-data", str(large_dataset), "--out", str(out)]
    argv += ["--model", "gfl_small", "--tile", "256", "--epochs", "1", "--batch-size", "4", "--workers", "0"]
    argv += ["--precision", "fp32", "--set", "model_overrides.min_size=128", "--set", "model_overrides.max_size=128"]
    argv += ["--set", "warmup_iters=1", "--set", "mosaic=0", "--set", "eval_max_detections=50"]
    assert main(argv) == 0
    assert "trained 4 iterations" in capsys.readouterr().out  # 18 tiles per epoch, 4 per step
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    evaluation = [row for row in rows if row.get("kind") == "eval"]
    assert evaluation and evaluation[-1]["max_detections"] == 50
