"""Class-aware matching, AUROC, safe output names and the overwrite guard."""

from pathlib import Path

import numpy as np
import pytest
import torch

from gfocal.analysis import auroc
from gfocal.analysis.matching import match_detections
from gfocal.fileio import OutputExistsError, output_path, prepare_output_dir, safe_name


def t(values, dtype=torch.float32):
    return torch.tensor(values, dtype=dtype)


def test_matching_is_class_aware_and_one_to_one():
    gt = t([[0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 10, 10]])
    gt_labels = t([0, 1, 1], torch.long)
    boxes = t([[0, 0, 10, 11], [21, 20, 30, 30], [50, 50, 60, 60]])
    labels = t([0, 1, 1], torch.long)
    match = match_detections(boxes, labels, t([0.9, 0.8, 0.7]), gt, gt_labels)
    # gt 2 overlaps detection 0 perfectly but has class 1: unmatched.
    assert match.detection.tolist() == [0, 1, -1]
    assert match.iou[0] == pytest.approx(100 / 110)


def test_a_detection_claimed_twice_keeps_its_best_annotation():
    gt = t([[0, 0, 10, 10], [1, 0, 11, 10]])
    match = match_detections(t([[1, 0, 11, 10]]), t([0], torch.long), t([0.5]), gt, t([0, 0], torch.long))
    assert match.detection.tolist() == [-1, 0]


def test_matching_with_nothing():
    empty = match_detections(
        torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), torch.zeros(0), t([[0, 0, 1, 1]]), t([0], torch.long)
    )
    assert empty.detection.tolist() == [-1]


def test_auroc_known_values():
    assert auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert auroc([1, 1, 1, 1], [0, 1, 0, 1]) == pytest.approx(0.5)  # ties count half
    assert np.isnan(auroc([0.1, 0.2], [1, 1]))
    rng = np.random.default_rng(0)
    scores, labels = rng.random(2000), rng.random(2000) < 0.3
    assert abs(auroc(scores, labels) - 0.5) < 0.05  # a random score sits near chance


@pytest.mark.parametrize("name", ["../../etc/passwd", "/abs/path.png", "a\\b:c", "..", "", "ok_name-1.png", "é" * 200])
def test_safe_names_stay_inside_the_output(tmp_path: Path, name):
    cleaned = safe_name(name)
    assert "/" not in cleaned and "\\" not in cleaned and not cleaned.startswith(".") and len(cleaned) <= 70
    path = output_path(tmp_path, "figures", cleaned)
    assert tmp_path.resolve() in path.resolve().parents


def test_distinct_names_stay_distinct():
    assert safe_name("a/b") != safe_name("a_b") and safe_name("a b") != safe_name("a?b")


def test_output_folder_is_not_overwritten_without_permission(tmp_path: Path):
    out = prepare_output_dir(tmp_path / "run")  # new folder: fine
    prepare_output_dir(out)  # empty folder: fine
    (out / "report.html").write_text("old")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        prepare_output_dir(out)
    prepare_output_dir(out, overwrite=True)
    assert (out / "report.html").read_text() == "old"  # reused, nothing deleted
    with pytest.raises(ValueError, match="outside"):
        output_path(out, "..", "escape.txt")
