"""gfocal predict --tile: large images predicted on tiles, outputs as without tiles."""

import json

import pytest
import torch
from PIL import Image

from gfocal.cli.main import main
from gfocal.models import gfl_small, save_weights


@pytest.fixture()
def weights(tmp_path):
    torch.manual_seed(0)
    return save_weights(gfl_small(2, min_size=128, max_size=128, score_threshold=0.0), tmp_path / "w.safetensors")


@pytest.fixture()
def large_image(tmp_path):
    path = tmp_path / "in" / "scene.png"
    path.parent.mkdir()
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 255, (700, 1100, 3), dtype=torch.uint8, generator=generator)
    Image.fromarray(pixels.numpy()).save(path)
    return path


@pytest.mark.parametrize("merge", ["dist", "nms", "nmm"])
def test_predict_on_tiles_writes_image_pixels_and_statistics(tmp_path, weights, large_image, merge, capsys):
    out = tmp_path / f"out_{merge}"
    argv = ["predict", str(large_image), "--weights", str(weights), "--out", str(out), "--tile", "256"]
    argv += ["--merge", merge, "--overlap", "0.25", "--workers", "0", "--precision", "fp32", "--distributions"]
    assert main(argv) == 0
    coco = json.loads((out / "predictions.json").read_text())
    assert coco["images"][0]["width"] == 1100 and coco["images"][0]["height"] == 700
    boxes = [a["bbox"] for a in coco["annotations"]]
    assert boxes, "an untrained model with score threshold 0 finds something"
    assert all(x >= 0 and y >= 0 and x + w <= 1100 + 1e-3 and y + h <= 700 + 1e-3 for x, y, w, h in boxes)
    assert max(x + w for x, y, w, h in boxes) > 256  # found beyond the first tile: mapped to image pixels
    first = coco["annotations"][0]
    assert len(first["distributions"]) == 4 and {"left_std", "ambiguity"} <= set(first)
    assert (out / "images" / "scene.jpg").exists()


def test_dirac_model_cannot_use_the_distribution_merge(tmp_path, large_image, capsys):
    weights = save_weights(gfl_small(2, box="dirac", min_size=128, max_size=128), tmp_path / "d.safetensors")
    argv = ["predict", str(large_image), "--weights", str(weights), "--out", str(tmp_path / "o"), "--tile", "256"]
    assert main(argv) == 2
    assert "--merge dist needs a model with edge distributions" in capsys.readouterr().err


def test_bad_overlap_is_a_one_line_error(tmp_path, weights, large_image, capsys):
    argv = ["predict", str(large_image), "--weights", str(weights), "--out", str(tmp_path / "o"), "--tile", "256"]
    assert main([*argv, "--overlap", "1.5"]) == 2
    error = capsys.readouterr().err
    assert "overlap" in error and "Traceback" not in error


def test_tile_accepts_images_over_pils_default_limit(tmp_path, weights, large_image, monkeypatch, capsys):
    # PIL's limit stands at 89 Mpx; a 700 x 1100 image plays a 10,000 x 10,000 one under a 500 kpx limit.
    monkeypatch.setattr("PIL.Image.MAX_IMAGE_PIXELS", 500_000)
    argv = ["predict", str(large_image), "--weights", str(weights), "--workers", "0", "--no-draw"]
    assert main([*argv, "--out", str(tmp_path / "whole")]) == 0
    assert "0 detections in 0 images (1 unreadable" in capsys.readouterr().out
    assert main([*argv, "--out", str(tmp_path / "tiled"), "--tile", "512"]) == 0
    assert "in 1 images" in capsys.readouterr().out
    from PIL import Image

    assert Image.MAX_IMAGE_PIXELS == 500_000  # raised for the command only: the caller's limit again after it
