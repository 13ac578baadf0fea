"""``gfocal analyze fusion`` end to end on a tiny set: one row per method, AP in range, the single model's AP
equal to plain evaluation of it."""

import json

import pytest
import torch

from gfocal.cli.main import main
from gfocal.data import load_dataset
from gfocal.data.image_io import decode_image
from gfocal.engine.evaluate import evaluate_detections
from gfocal.models import gfl_small, load_model, save_weights


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ensemble")
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = gfl_small(4, min_size=64, max_size=64, score_threshold=0.0, max_detections=20)
        paths.append(save_weights(model, folder / f"m{seed}.safetensors"))
    return paths


def test_fusion_command_reports_every_method(tiny_coco, two_models, tmp_path, capsys):
    out = tmp_path / "fusion.json"
    args = ["-q", "analyze", "fusion", "--weights", *map(str, two_models), "--data", str(tiny_coco)]
    assert main([*args, "--scales", "1.0", "1.25", "--flip", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["views"] == 4 and list(report["methods"]) == ["single", "nms", "wbf", "distribution"]
    assert all(0.0 <= row["AP"] <= 1.0 and row["seconds"] > 0 for row in report["methods"].values())
    model = load_model(two_models[0]).eval()
    records = load_dataset(tiny_coco, warn=False)
    with torch.no_grad():
        plain = {i: model([decode_image(r.path)])[0] for i, r in enumerate(records.images)}
    assert report["methods"]["single"]["AP"] == pytest.approx(evaluate_detections(records, plain)["AP"])
    assert "distribution" in capsys.readouterr().out
