"""gfocal predict --tta and gfocal eval --tta: fused views end to end, one view equal to no TTA, refusals."""

import json

import pytest
import torch

from gfocal.cli.main import main
from gfocal.data.synthetic import make_synthetic_dataset
from gfocal.models import gfl_small, save_weights

SIZE = 64


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """3 synthetic images of 64 x 80 px with 1-3 shapes (4 classes), as COCO json."""
    root = tmp_path_factory.mktemp("tta_data")
    return make_synthetic_dataset(root, num_images=3, image_size=(SIZE, 80), size_range=(12, 40), seed=5)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    model = gfl_small(4, min_size=SIZE, max_size=SIZE, score_threshold=0.0, max_detections=25)
    with torch.no_grad():
        for parameter in model.head.parameters():  # an untrained head predicts one box everywhere: vary it
            parameter.add_(torch.randn_like(parameter) * 0.2)
    return save_weights(model, tmp_path_factory.mktemp("tta_weights") / "w.safetensors")


def predict(weights, data, out, *options):
    argv = ["-q", "predict", str(data.parent / "train"), "--weights", str(weights), "--out", str(out)]
    assert main([*argv, "--workers", "0", "--precision", "fp32", "--no-draw", *options]) == 0
    return json.loads((out / "results.json").read_text())


def evaluate(weights, data, out, *options):
    argv = ["-q", "eval", "--weights", str(weights), "--data", str(data), "--out", str(out)]
    assert main([*argv, "--workers", "0", "--precision", "fp32", *options]) == 0
    return json.loads(out.read_text())


@pytest.mark.parametrize("fusion", ["distribution", "wbf"])
def test_predict_with_tta_writes_fused_boxes_in_image_pixels(tmp_path, weights, data, fusion, capsys):
    results = predict(weights, data, tmp_path / "out", "--tta", "--tta-scales", "0.8", "1.25", "--fusion", fusion)
    assert results and len({r["image_id"] for r in results}) == 3
    assert all(x >= 0 and y >= 0 and x + w <= 80 + 1e-3 and y + h <= SIZE + 1e-3 for x, y, w, h in (
        r["bbox"] for r in results
    ))  # fmt: skip
    per_image = [sum(r["image_id"] == i for r in results) for i in (1, 2, 3)]
    assert max(per_image) <= 25  # the model's max_detections holds after fusion too


def test_predict_with_one_tta_view_and_nms_is_plain_predict(tmp_path, weights, data):
    plain = predict(weights, data, tmp_path / "plain")
    one_view = predict(
        weights, data, tmp_path / "tta", "--tta", "--tta-scales", "1", "--tta-no-flip", "--fusion", "nms"
    )
    assert len(one_view) == len(plain) > 3
    for a, b in zip(one_view, plain):
        assert a["image_id"] == b["image_id"] and a["category_id"] == b["category_id"]
        assert a["bbox"] == pytest.approx(b["bbox"], abs=1e-4) and a["score"] == pytest.approx(b["score"], abs=1e-6)


def test_eval_with_tta(tmp_path, weights, data):
    plain = evaluate(weights, data, tmp_path / "plain.json")
    one_view = evaluate(
        weights, data, tmp_path / "one.json", "--tta", "--tta-scales", "1", "--tta-no-flip", "--fusion", "nms"
    )
    assert one_view["AP"] == pytest.approx(plain["AP"]) and one_view["AR100"] == pytest.approx(plain["AR100"])
    fused = evaluate(weights, data, tmp_path / "tta.json", "--tta")
    assert 0.0 <= fused["AP"] <= 1.0 and 0.0 <= fused["AR100"] <= 1.0


@pytest.mark.parametrize("command", ["predict", "eval"])
def test_dirac_model_refuses_distribution_fusion(tmp_path, data, command, capsys):
    dirac = save_weights(gfl_small(4, box="dirac", min_size=SIZE, max_size=SIZE), tmp_path / "d.safetensors")
    if command == "predict":
        argv = ["predict", str(data.parent / "train"), "--out", str(tmp_path / "o")]
    else:
        argv = ["eval", "--data", str(data)]
    assert main([*argv, "--weights", str(dirac), "--tta"]) == 2
    err = capsys.readouterr().err
    assert "--fusion distribution needs a model with edge distributions" in err and len(err.strip().splitlines()) == 1
    if command == "eval":
        assert (
            main([*argv, "--weights", str(dirac), "--tta", "--fusion", "wbf", "--out", str(tmp_path / "e.json")]) == 0
        )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--tta", "--tile", "256"], "--tta and --tile do not combine"),
        (["--fusion", "wbf"], "need --tta"),
        (["--tta", "--tta-scales", "0"], "--tta-scales"),
        (["--tta", "--distributions"], "--distributions"),
    ],
)
def test_tta_option_mistakes(tmp_path, weights, data, options, message, capsys):
    argv = ["predict", str(data.parent / "train"), "--weights", str(weights), "--out", str(tmp_path / "o")]
    assert main([*argv, *options]) == 2
    assert message in capsys.readouterr().err
