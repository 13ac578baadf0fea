"""``benchmarks/small_data.py`` and its helpers: the peer's label conversion, scoring by file name, the
summary; the dataset renderers only where scikit-image (a benchmark requirement) is installed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import small_data
import yolo_peer
from PIL import Image


@pytest.fixture
def coco(tmp_path: Path) -> Path:
    """Two images (40x30 and 20x20) under a subfolder, category ids with a gap, one crowd box."""
    (tmp_path / "imgs").mkdir()
    for name, size in (("a.jpg", (40, 30)), ("b.jpg", (20, 20))):
        Image.new("RGB", size, (90, 90, 90)).save(tmp_path / "imgs" / name)
    data = {
        "images": [
            {"id": 1, "file_name": "imgs/a.jpg", "width": 40, "height": 30},
            {"id": 2, "file_name": "imgs/b.jpg", "width": 20, "height": 20},
        ],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 7, "bbox": [4, 3, 8, 6], "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 3, "bbox": [20, 10, 10, 10], "iscrowd": 0},
            {"id": 3, "image_id": 2, "category_id": 3, "bbox": [0, 0, 20, 20], "iscrowd": 1},
        ],
        "categories": [{"id": 7, "name": "seven"}, {"id": 3, "name": "three"}],
    }
    path = tmp_path / "split.json"
    path.write_text(json.dumps(data))
    return path


def test_yolo_layout_has_normalised_centre_boxes_in_category_id_order(coco: Path, tmp_path: Path):
    yaml = yolo_peer.write_yolo_layout({"train": coco, "val": coco}, tmp_path / "yolo")
    assert json.loads(yaml.read_text())["names"] == ["three", "seven"]  # labels 0..C-1 in increasing id order
    first = (tmp_path / "yolo" / "labels" / "train" / "000000.txt").read_text().split("\n")
    rows = np.array([row.split() for row in first if row], dtype=float)
    np.testing.assert_allclose(rows, [[1, 0.2, 0.2, 0.2, 0.2], [0, 0.625, 0.5, 0.25, 1 / 3]], atol=1e-6)
    assert (tmp_path / "yolo" / "labels" / "val" / "000001.txt").read_text() == ""  # its only box is a crowd
    assert (tmp_path / "yolo" / "images" / "train" / "000001.jpg").resolve() == (
        coco.parent / "imgs" / "b.jpg"
    ).resolve()


def test_yolo_trains_fixed_epochs_or_a_time_budget_in_hours():
    assert yolo_peer.training_length(150, None) == {"epochs": 150}
    assert yolo_peer.training_length(None, 30) == {"time": 0.5}
    with pytest.raises(ValueError):
        yolo_peer.training_length(150, 30)


def test_detections_keyed_by_file_name_are_scored_against_their_own_image(coco: Path):
    truth = {"imgs/a.jpg": {"boxes": [[4, 3, 12, 9], [20, 10, 30, 20]], "scores": [0.9, 0.8], "labels": [1, 0]}}
    assert small_data.score(coco, truth)["AP"] == pytest.approx(1.0)
    swapped = {"imgs/b.jpg": truth["imgs/a.jpg"]}
    assert small_data.score(coco, swapped)["AP"] == pytest.approx(0.0)


def test_summary_is_mean_and_std_per_dataset_and_variant_without_failed_runs():
    runs = [
        {
            "dataset": "coins",
            "variant": "v",
            "AP": ap,
            "AP50": ap,
            "APs": ap,
            "APm": ap,
            "iterations": 10,
            "epochs": 1.5,
            "train_seconds": 60.0,
        }
        for ap in (0.2, 0.4)
    ] + [{"dataset": "coins", "variant": "v", "error": "boom"}]
    [row] = small_data.summarise(runs)
    assert (row["runs"], row["failed"]) == (2, 1)
    assert row["AP"] == pytest.approx({"mean": 0.3, "std": np.std([0.2, 0.4], ddof=1)})
    assert "| coins | v | 2 (+1 failed) | 30.0 ± 14.1 |" in small_data.markdown([row], 1.0)


@pytest.mark.parametrize("name", ["coins", "cells"])
def test_dataset_images_are_deterministic_with_boxes_inside(name: str):
    pytest.importorskip("skimage")
    import small_data_sets

    small_data_sets._load_sources()
    render = small_data_sets.DATASETS[name][2]
    pixels, boxes = render(np.random.default_rng(3), 160, 200)
    again, same = render(np.random.default_rng(3), 160, 200)
    assert pixels.shape == (160, 200, 3) and pixels.dtype == np.uint8
    assert np.array_equal(pixels, again) and boxes == same and len(boxes) > 0
    boxes = np.asarray(boxes, dtype=float)
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 200).all() and (boxes[:, 3] <= 160).all()
    assert (boxes[:, 2:] - boxes[:, :2] >= 3).all()


def test_fixed_step_runs_train_the_given_epochs_and_evaluate_only_at_the_end():
    assert small_data.fixed_steps_args(None) == []
    extra = small_data.VARIANTS["no_mosaic"] + small_data.fixed_steps_args(40)
    from gfocal.cli.main import build_parser

    args = build_parser().parse_args(["train", "--data", "d.json", "--out", "o", *small_data.VARIANTS["today"], *extra])
    assert args.epochs == 40  # the fixed-step flag comes last, so it wins over a variant's own --epochs
    assert {"eval_interval=0", "eval_share=0", "mosaic=0"} <= set(args.overrides)


def test_fixed_step_screen_refuses_the_peer(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(sys, "argv", ["small_data.py", "--epochs", "10", "--variants", "default", small_data.PEER])
    with pytest.raises(SystemExit) as stop:
        small_data.main()
    assert stop.value.code == 2
