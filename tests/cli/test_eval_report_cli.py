"""gfocal eval --report end to end, gfocal predict --score-threshold best, and the page in a real headless browser."""

import json
import os
import shutil
import subprocess
import tempfile

import numpy as np
import pytest
import torch
from PIL import Image

from gfocal.cli.main import main
from gfocal.data.synthetic import make_synthetic_dataset
from gfocal.models import gfl_small, save_weights

SIZE = 64
CLASSES = ("rectangle", "ellipse", "triangle", "cross")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """4 synthetic images of 64 px with 1-3 shapes (4 classes), as COCO json."""
    root = tmp_path_factory.mktemp("report_data")
    return make_synthetic_dataset(root, num_images=4, image_size=SIZE, size_range=(12, 40), seed=7)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    model = gfl_small(4, min_size=SIZE, max_size=SIZE, class_names=CLASSES, score_threshold=0.0, max_detections=25)
    return save_weights(model, tmp_path_factory.mktemp("report_weights") / "w.safetensors")


def hand_made(model, dataset, *args, **kwargs):
    """Detections known in advance (an untrained model finds nothing): every object found at 0.9 but the last one
    of the last image, detected as the next class instead (0.9); the first object of image 0 also taken for the
    next class (0.95); a false box in each image's corner (0.3)."""
    detections = {}
    last = len(dataset.records.images) - 1
    for index, image in enumerate(dataset.records.images):
        assert image.annotations, "the fixture needs an object in every image"
        boxes = [list(a.box) for a in image.annotations] + [[0, 0, 6, 6]]
        labels = [a.label for a in image.annotations] + [index % 4]
        scores = [0.9] * len(image.annotations) + [0.3]
        if index == last:
            labels[-2] = (labels[-2] + 1) % 4
        if index == 0:
            boxes.append(boxes[0])
            labels.append((labels[0] + 1) % 4)
            scores.append(0.95)
        detections[index] = {
            "boxes": np.asarray(boxes, np.float32),
            "scores": np.asarray(scores, np.float32),
            "labels": np.asarray(labels, np.int64),
        }
    return detections


@pytest.fixture(scope="module")
def evaluated(data, weights, tmp_path_factory):
    """(eval JSON, report folder) of gfocal eval --report on the hand-made detections."""
    from gfocal.engine import evaluate

    out = tmp_path_factory.mktemp("evaluated")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(evaluate, "gather_detections", hand_made)
        argv = ["-q", "eval", "--weights", str(weights), "--data", str(data), "--workers", "0", "--precision", "fp32"]
        assert main([*argv, "--out", str(out / "eval.json"), "--report", str(out / "report")]) == 0
    return out / "eval.json", out / "report"


def test_eval_report_writes_the_page_pictures_and_the_same_numbers_as_the_eval_json(evaluated, weights):
    eval_json, folder = evaluated
    results, report = json.loads(eval_json.read_text()), json.loads((folder / "report.json").read_text())
    names = {p.relative_to(folder).as_posix() for p in folder.rglob("*.png")}
    assert {"pr_curves.png", "f1.png", "confusion.png", "ap_per_iou.png"} <= names
    assert results["best_score_threshold"] == report["best_score_threshold"]
    # Objects: all but one right at 0.9 (N - 1 of N); false: one at 0.95, one at 0.9, four at 0.3.
    objects = sum(row["num_gt"] for row in results["per_class"])
    right, kept = objects - 1, objects - 1 + 2
    assert report["best_score_threshold"]["overall"] == pytest.approx(
        {
            "threshold": (0.9 + 0.3) / 2,  # between the lowest score kept and the highest dropped
            "lowest_kept_score": 0.9,
            "precision": right / kept,
            "recall": right / objects,
            "f1": 2 * right / (kept + objects),
        }
    )
    assert report["AP_per_iou"] == results["AP_per_iou"]
    for row, from_eval in zip(report["per_class"], results["per_class"]):
        if row["num_gt"]:
            assert np.mean(report["pr_curves"]["0.50"][row["class"]]) == pytest.approx(from_eval["AP50"])
    # At 0.9: the last image's object taken for the next class (1 off the diagonal), image 0's extra box false.
    matrix = np.asarray(report["confusion"]["matrix"])
    assert matrix.trace() == right and matrix[:-1, :-1].sum() == objects and matrix[-1].sum() == 1
    assert [(w["image_id"], w["false_positives"], w["missed"]) for w in report["worst_images"]] == [
        (3, 1, 1),
        (0, 1, 0),
    ]
    assert sorted(n for n in names if n.startswith("worst/")) == ["worst/01_000003.png", "worst/02_000000.png"]
    assert sorted(os.listdir(weights.parent)) == ["w.safetensors"]  # nothing written beside the user's weights
    page = (folder / "index.html").read_text()
    assert page.count("data:image/png;base64,") == 4 + 2 and "--score-threshold best" in page


def test_eval_without_report_stores_the_same_threshold_and_writes_no_folder(evaluated, data, weights, tmp_path):
    from gfocal.engine import evaluate

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(evaluate, "gather_detections", hand_made)
        argv = ["-q", "eval", "--weights", str(weights), "--data", str(data), "--workers", "0", "--precision", "fp32"]
        assert main([*argv, "--out", str(tmp_path / "plain.json")]) == 0
    plain, with_report = (json.loads(p.read_text()) for p in (tmp_path / "plain.json", evaluated[0]))
    assert plain["best_score_threshold"] == with_report["best_score_threshold"] and os.listdir(tmp_path) == [
        "plain.json"
    ]


def test_eval_report_refuses_a_folder_with_files_before_running(evaluated, data, weights, capsys):
    _, folder = evaluated
    argv = ["eval", "--weights", str(weights), "--data", str(data), "--out", str(folder.parent / "again.json")]
    assert main([*argv, "--report", str(folder)]) == 2
    assert "--overwrite" in capsys.readouterr().err and not (folder.parent / "again.json").exists()


def predict(weights, data, out, *options):
    argv = ["-q", "predict", str(data.parent / "train"), "--weights", str(weights), "--out", str(out), "--no-draw"]
    return main([*argv, "--workers", "0", "--precision", "fp32", *options])


@pytest.mark.parametrize("source", ["eval.json", "report", "report/report.json"])
def test_predict_with_the_best_threshold_keeps_only_detections_above_it(evaluated, data, weights, tmp_path, source):
    eval_json, _ = evaluated
    assert predict(weights, data, tmp_path / "out", "--score-threshold", "best", "--eval-json", str(eval_json.parent / source)) == 0  # fmt: skip
    assert all(r["score"] > 0.6 for r in json.loads((tmp_path / "out" / "results.json").read_text()))


def test_predict_best_without_a_source_or_with_a_stale_file_is_a_clear_error(
    evaluated, data, weights, tmp_path, capsys
):
    eval_json, _ = evaluated
    assert predict(weights, data, tmp_path / "a", "--score-threshold", "best") == 2
    assert "--eval-json" in capsys.readouterr().err
    assert predict(weights, data, tmp_path / "b", "--score-threshold", "0.5", "--eval-json", str(eval_json)) == 2
    assert "only with --score-threshold best" in capsys.readouterr().err
    (tmp_path / "old.json").write_text('{"AP": 0.1}')
    assert predict(weights, data, tmp_path / "c", "--score-threshold", "best", "--eval-json", str(tmp_path / "old.json")) == 2  # fmt: skip
    assert "run 'gfocal eval' again" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()  # refused before any output


def test_predict_best_finds_the_one_eval_json_beside_the_weights_and_refuses_to_choose_between_two(
    evaluated, data, weights, tmp_path, capsys
):
    eval_json, _ = evaluated
    beside = tmp_path / "run"
    beside.mkdir()
    copied = beside / "w.safetensors"
    shutil.copy(weights, copied)
    shutil.copy(eval_json, beside / "eval_val.json")
    with pytest.warns(UserWarning, match="found for"):  # the stored weights path is the original's
        assert predict(copied, data, tmp_path / "out", "--score-threshold", "best") == 0
    assert "eval_val.json" in capsys.readouterr().out
    assert all(r["score"] > 0.6 for r in json.loads((tmp_path / "out" / "results.json").read_text()))
    shutil.copy(eval_json, beside / "eval_test.json")
    assert predict(copied, data, tmp_path / "two", "--score-threshold", "best") == 2
    assert "2 eval_*.json beside" in capsys.readouterr().err and not (tmp_path / "two").exists()


def _chromium() -> str | None:
    return next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome") if shutil.which(name)), None)  # fmt: skip


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason="no Chromium (Debian: apt-get install chromium)")
def test_the_page_opens_from_disk_in_headless_chromium_with_every_figure_drawn(evaluated, tmp_path):
    _, folder = evaluated
    common = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars"]  # fmt: skip
    url = (folder / "index.html").resolve().as_uri()
    with tempfile.TemporaryDirectory() as profile:
        shot = tmp_path / "page.png"
        run = lambda *a: subprocess.run([*common, f"--user-data-dir={profile}", *a, url], capture_output=True, text=True, timeout=120)  # noqa: E731  # fmt: skip
        dom = run("--dump-dom").stdout
        run(f"--screenshot={shot}", "--window-size=1200,5000")
    # The browser parsed the tables (the class names, the confusion matrix's background row) and the figures.
    assert all(name in dom for name in CLASSES) and '<table id="confusion">' in dom and dom.count("<img") == 6
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.int64)  # [H, W, 3]
    assert pixels.shape[:2] == (5000, 1200)
    # The PR curves' blue (#1f77b4) and the worst images' cyan boxes (#00c8ff) reach the screen: the PNGs decoded.
    for colour in ((0x1F, 0x77, 0xB4), (0x00, 0xC8, 0xFF)):
        assert (np.abs(pixels - colour).sum(-1) < 30).sum() > 50, colour
