"""Full-image evaluation: --max-detections reaches pycocotools, dense scenes are reported, eval --tile runs."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from gfocal.cli.main import main
from gfocal.data import load_dataset
from gfocal.engine.evaluate import evaluate_detections, format_results
from gfocal.models import gfl_small, save_weights
from support import files


@pytest.fixture()
def dense_scene(tmp_path):
    """One 600 x 900 image with 150 touching 20 x 20 boxes (10 rows of 15), as COCO json."""
    Image.fromarray(np.full((600, 900, 3), 90, np.uint8)).save(tmp_path / "scene.png")
    boxes = [[40 + 20 * c, 50 + 20 * r, 20, 20] for r in range(10) for c in range(15)]
    return files.coco(
        tmp_path / "scene.json",
        images=[{"id": 1, "file_name": "scene.png", "width": 900, "height": 600}],
        annotations=[{**files.box(b, i + 1), "area": 400, "iscrowd": 0} for i, b in enumerate(boxes)],
        categories=[{"id": 1, "name": "cell"}, {"id": 2, "name": "dirt"}],
    )


def perfect(records):
    boxes = torch.tensor(records.images[0].boxes(), dtype=torch.float32)
    return {0: {"boxes": boxes, "scores": torch.linspace(0.9, 0.5, len(boxes)), "labels": torch.zeros(len(boxes))}}


def test_more_objects_than_max_detections_caps_ap_and_is_reported(dense_scene):
    records = load_dataset(dense_scene)
    capped = evaluate_detections(records, perfect(records))  # COCO's 100
    assert capped["AP"] < 0.7 and capped["images_over_max_detections"] == 1 and capped["most_ground_truth"] == 150
    assert "raise --max-detections" in format_results(capped)
    full = evaluate_detections(records, perfect(records), max_detections=200)
    assert full["AP"] == pytest.approx(1.0) and full["images_over_max_detections"] == 0
    assert "warning" not in format_results(full)


def test_eval_on_tiles_from_the_command_line(dense_scene, tmp_path, capsys):
    torch.manual_seed(0)
    weights = save_weights(
        gfl_small(2, class_names=("cell", "dirt"), min_size=128, max_size=128), tmp_path / "w.safetensors"
    )
    out = tmp_path / "eval.json"
    argv = ["eval", "--weights", str(weights), "--data", str(dense_scene), "--out", str(out), "--tile", "256"]
    assert main([*argv, "--max-detections", "120", "--workers", "0", "--precision", "fp32"]) == 0
    saved = json.loads(out.read_text())
    assert saved["max_detections"] == 120 and saved["images_over_max_detections"] == 1
    assert "raise --max-detections" in capsys.readouterr().out
