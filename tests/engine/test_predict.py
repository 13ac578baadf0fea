"""Prediction over files: sources, output files, safety of the output folder."""

import json

import pytest
import torch
from PIL import Image

from gfocal.engine.predict import find_images, predict_files, write_predictions
from gfocal.fileio import prepare_output_dir
from gfocal.models import gfl_small
from gfocal.models.fusion import TestTimeAugmentation
from gfocal.tiling import TilingConfig
from support import files


@pytest.fixture()
def images(tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    Image.new("RGB", (80, 60), (200, 30, 30)).save(folder / "a.png")
    Image.new("L", (64, 64), 128).save(folder / "sub" / "a.jpg")  # same stem, other folder, grayscale
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_sources_file_folder_and_glob(images):
    assert find_images(images / "a.png") == [images / "a.png"]
    assert find_images(images) == [images / "a.png", images / "sub" / "a.jpg"]
    assert find_images(str(images / "**" / "*.jpg")) == [images / "sub" / "a.jpg"]
    with pytest.raises(FileNotFoundError, match="no images found"):
        find_images(images / "missing")


def test_output_folder_is_never_reused_silently(tmp_path):
    out = prepare_output_dir(tmp_path / "out", overwrite=False)
    (out / "keep.txt").write_text("user data")
    with pytest.raises(FileExistsError, match="--overwrite"):
        prepare_output_dir(out, overwrite=False)
    assert prepare_output_dir(out, overwrite=True) == out and (out / "keep.txt").read_text() == "user data"


def test_predictions_are_written_in_original_pixels_as_coco(images, tmp_path):
    torch.manual_seed(0)
    model = gfl_small(2, class_names=("red", "grey"), min_size=64, max_size=64, score_threshold=0.0)
    paths = find_images(images)
    out = prepare_output_dir(tmp_path / "out", overwrite=False)
    predictions = predict_files(model, paths, batch_size=2, precision="fp32", return_distributions=True, progress=False)
    counts = write_predictions(
        predictions, out, model.class_names, box_fields=lambda d: [{"edge_std": s} for s in d["edge_std"].tolist()]
    )
    results = json.loads((out / "results.json").read_text())
    coco = json.loads((out / "predictions.json").read_text())
    assert counts == {"images": 2, "detections": len(results)} and {r["image_id"] for r in results} == {1, 2}
    assert [i["width"] for i in coco["images"]] == [80, 64] and coco["categories"][1]["name"] == "grey"
    for entry in coco["annotations"]:
        x, y, w, h = entry["bbox"]
        image = coco["images"][entry["image_id"] - 1]
        assert 0 <= x and x + w <= image["width"] + 1e-3 and y + h <= image["height"] + 1e-3
        assert len(entry["edge_std"]) == 4
    # Two sources share the stem "a": both drawings are kept, under distinct safe names.
    assert sorted(p.name for p in (out / "images").iterdir()) == ["a.jpg", "a_1.jpg"]


def test_eval_and_predict_feed_the_network_identical_tensors(tmp_path, monkeypatch):
    """gfocal eval (a labelled dataset) and gfocal predict (the bare file) put the same tensor into the backbone."""
    from gfocal.engine import evaluate

    generator = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (93, 141, 3), dtype=torch.uint8, generator=generator).numpy()
    Image.fromarray(pixels).save(tmp_path / "a.png")
    files.coco(
        tmp_path / "a.json",
        images=[{"id": 1, "file_name": "a.png", "width": 141, "height": 93}],
        annotations=[{**files.box([10, 10, 30, 20]), "area": 600, "iscrowd": 0}],
    )
    model = gfl_small(1, class_names=("x",), min_size=64, max_size=64)
    fed = []
    model.backbone.register_forward_pre_hook(lambda module, args: fed.append(args[0].clone()))
    monkeypatch.setattr(evaluate, "load_model", lambda weights, image_size=None: model)
    evaluate.evaluate_weights("unused.safetensors", tmp_path / "a.json", precision="fp32", workers=0)
    list(predict_files(model, [tmp_path / "a.png"], precision="fp32", progress=False))
    assert len(fed) == 2 and fed[0].shape[-2:] == (64, 64) and torch.equal(fed[0], fed[1])


def test_predict_and_drawing_decode_each_file_once(images, tmp_path, monkeypatch):
    """Every decode in gfocal is counted: predicting and drawing decode each file exactly once."""
    import sys

    from gfocal.data import image_io

    original, decoded = image_io.decode_image, []

    def counting(path, *args, **kwargs):
        decoded.append(path)
        return original(path, *args, **kwargs)

    for module in [m for name, m in sys.modules.items() if name.startswith("gfocal")]:
        if getattr(module, "decode_image", None) is original:
            monkeypatch.setattr(module, "decode_image", counting)
    model = gfl_small(2, min_size=64, max_size=64)
    paths = find_images(images)
    predictions = predict_files(model, paths, batch_size=1, precision="fp32", progress=False)
    counts = write_predictions(predictions, prepare_output_dir(tmp_path / "out", False), model.class_names)
    assert counts["images"] == 2 and len(list((tmp_path / "out" / "images").iterdir())) == 2
    assert sorted(decoded) == sorted(paths)


def test_tta_and_tiling_are_refused_together(images):
    model = gfl_small(2, min_size=64, max_size=64)
    run = predict_files(model, find_images(images), tta=TestTimeAugmentation(), tiling=TilingConfig(64), progress=False)
    with pytest.raises(ValueError, match="do not combine"):
        next(run)


def test_evaluate_weights_applies_inference_overrides(tmp_path, monkeypatch):
    """``overrides`` reach the rebuilt model's config (a benchmark scores one weights file at several NMS IoUs)."""
    from gfocal.engine import evaluate
    from gfocal.models.weights import save_weights

    Image.new("RGB", (64, 64), (90, 90, 90)).save(tmp_path / "a.png")
    files.coco(
        tmp_path / "a.json",
        images=[{"id": 1, "file_name": "a.png", "width": 64, "height": 64}],
        annotations=[{**files.box([10, 10, 30, 20]), "area": 600, "iscrowd": 0}],
    )
    weights = save_weights(gfl_small(1, class_names=("x",), min_size=64, max_size=64), tmp_path / "m.safetensors")
    built = []
    original = evaluate.load_model
    monkeypatch.setattr(evaluate, "load_model", lambda *a, **k: built.append(original(*a, **k)) or built[-1])
    evaluate.evaluate_weights(weights, tmp_path / "a.json", precision="fp32", workers=0)
    evaluate.evaluate_weights(
        weights, tmp_path / "a.json", precision="fp32", workers=0, overrides={"nms_iou_threshold": 0.45}
    )
    assert [m.config.nms_iou_threshold for m in built] == [0.6, 0.45]
