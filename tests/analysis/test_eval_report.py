"""The evaluation report's numbers: known answers on hand-built detections, and pycocotools' own AP recovered."""

import numpy as np
import pytest
import torch

from gfocal.analysis.eval_report import (
    best_f1,
    eval_report,
    f1_by_threshold,
    interpolated_precision,
    precision_recall,
    ranked_detections,
    read_best_threshold,
    suggested_score_threshold,
)
from gfocal.engine.evaluate import coco_evaluation, coco_metrics
from support.standin import Ann, Img, Records

CAT, DOG, BACKGROUND = 0, 1, 2


def two_images():
    """Image 0: a cat and a dog; image 1: a cat. Detections (score): the first cat (0.9), a cat on the dog (0.8),
    a cat on nothing (0.3); in image 1 the cat (0.6) and a dog on nothing (0.7)."""
    records = Records(
        [
            Img(100, 100, [Ann((10, 10, 40, 40), CAT), Ann((50, 50, 90, 90), DOG)]),
            Img(100, 100, [Ann((10, 10, 50, 50), CAT)]),
        ],
        ["cat", "dog"],
    )
    detections = {
        0: {
            "boxes": torch.tensor([[10, 10, 40, 40], [50, 50, 90, 90], [0, 0, 5, 5]], dtype=torch.float32),
            "scores": torch.tensor([0.9, 0.8, 0.3]),
            "labels": torch.tensor([CAT, CAT, CAT]),
        },
        1: {
            "boxes": torch.tensor([[10, 10, 50, 50], [60, 60, 90, 90]], dtype=torch.float32),
            "scores": torch.tensor([0.6, 0.7]),
            "labels": torch.tensor([CAT, DOG]),
        },
    }
    return records, detections


def report_of(records, detections, **options):
    coco_eval = coco_evaluation(records, detections)
    return eval_report(coco_eval, records.class_names, coco_metrics(coco_eval, records.class_names), **options)


def test_hand_built_precision_recall_and_interpolated_ap():
    records, detections = two_images()
    coco_eval = coco_evaluation(records, detections)
    cat = ranked_detections(coco_eval, CAT)
    assert cat.scores.tolist() == pytest.approx([0.9, 0.8, 0.6, 0.3]) and cat.num_gt == 2
    precision, recall = precision_recall(cat, 0)
    assert precision == pytest.approx([1, 1 / 2, 2 / 3, 1 / 2]) and recall == pytest.approx([0.5, 0.5, 1, 1])
    # Recall points 0..0.50 are reached at precision 1, 0.51..1 at 2/3 (the envelope).
    ap = interpolated_precision(precision, recall, coco_eval.params.recThrs).mean()
    assert ap == pytest.approx((51 + 50 * 2 / 3) / 101)
    assert coco_metrics(coco_eval, records.class_names)["per_class"][CAT]["AP50"] == pytest.approx(ap)


def test_hand_built_best_thresholds_confusion_and_worst_images():
    report = report_of(*two_images())
    best = report["best_score_threshold"]
    # cat alone: keeping >= 0.6 gives 2 of 3 right and both cats (F1 0.8); the dog is never found. The threshold
    # lies between the last score kept (0.6) and the next (0.3), for the model's rule "score > threshold".
    assert best["per_class"]["cat"] == pytest.approx(
        {"threshold": 0.45, "lowest_kept_score": 0.6, "precision": 2 / 3, "recall": 1, "f1": 0.8}
    )
    assert best["per_class"]["dog"] is None
    # All classes: 0.9 T, 0.8 F, 0.7 F, 0.6 T, 0.3 F against 3 objects; >= 0.6 gives P 1/2, R 2/3.
    assert best["overall"] == pytest.approx(
        {"threshold": 0.45, "lowest_kept_score": 0.6, "precision": 0.5, "recall": 2 / 3, "f1": 4 / 7}
    )
    assert best["iou"] == 0.5
    records, detections = two_images()
    assert suggested_score_threshold(coco_evaluation(records, detections), records.class_names) == best
    # Rows: true cat, dog, background; columns: detected cat, dog, background.
    assert report["confusion"]["labels"] == ["cat", "dog", "background"]
    assert report["confusion"]["matrix"] == [[2, 0, 0], [1, 0, 0], [0, 1, 0]]
    assert report["worst_images"] == [
        {"image_id": 0, "errors": 2, "false_positives": 1, "missed": 1},
        {"image_id": 1, "errors": 1, "false_positives": 1, "missed": 0},
    ]
    cat = report["per_class"][CAT]
    assert cat["AP75"] == pytest.approx(cat["AP50"]) and cat["best_f1"]["threshold"] == pytest.approx(0.45)
    assert report["per_class"][DOG]["AP50"] == 0.0


def test_f1_by_threshold_equals_counting_by_hand():
    rng = np.random.default_rng(0)
    scores = np.sort(rng.random(40).round(1))[::-1]  # ties on purpose
    true = rng.random(40) < 0.5
    grid = np.linspace(0, 1, 21)
    curve = f1_by_threshold(scores, true, 30, grid)
    for g, precision, recall, f1 in zip(grid, curve["precision"], curve["recall"], curve["f1"]):
        kept = scores > g
        tp = (true & kept).sum()
        assert recall == pytest.approx(tp / 30)
        assert precision == pytest.approx(tp / kept.sum() if kept.any() else 1.0)
        assert f1 == pytest.approx(2 * tp / (kept.sum() + 30) if tp else 0.0)
    best = best_f1(scores, true, 30)
    assert best["f1"] >= curve["f1"].max() - 1e-12  # the cuts between scores include every step of the grid's curve
    kept = scores > best["threshold"]
    assert best["f1"] == pytest.approx(2 * (true & kept).sum() / (kept.sum() + 30))
    assert scores[kept].min() == best["lowest_kept_score"]


def random_case(seed: int):
    """6 images, 3 classes, noisy detections with tied scores, crowd and difficult boxes."""
    rng = np.random.default_rng(seed)
    images, detections = [], {}
    for index in range(6):
        anns, boxes, scores, labels = [], [], [], []
        for _ in range(rng.integers(0, 6)):
            x, y = rng.uniform(0, 80, 2)
            w, h = rng.uniform(8, 40, 2)
            label = int(rng.integers(0, 3))
            kind = rng.random()
            anns.append(Ann((x, y, x + w, y + h), label, iscrowd=kind < 0.1, difficult=0.1 <= kind < 0.15))
            for _ in range(rng.integers(0, 3)):  # duplicates and misses
                jitter = rng.normal(0, 4, 4)
                boxes.append([x + jitter[0], y + jitter[1], x + w + jitter[2], y + h + jitter[3]])
                labels.append(label if rng.random() < 0.8 else int(rng.integers(0, 3)))
                scores.append(round(float(rng.random()), 1))
        for _ in range(rng.integers(0, 3)):  # detections on nothing
            x, y = rng.uniform(0, 80, 2)
            boxes.append([x, y, x + 15, y + 15])
            labels.append(int(rng.integers(0, 3)))
            scores.append(round(float(rng.random()), 1))
        images.append(Img(128, 128, anns))
        detections[index] = {
            "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "scores": torch.tensor(scores, dtype=torch.float32),
            "labels": torch.tensor(labels, dtype=torch.int64),
        }
    return Records(images, ["a", "b", "c"]), detections


@pytest.mark.parametrize("seed", range(4))
def test_report_curves_give_pycocotools_ap_at_iou_50_and_75_per_class(seed):
    records, detections = random_case(seed)
    coco_eval = coco_evaluation(records, detections)
    precision = coco_eval.eval["precision"][:, :, :, 0, -1]  # [T, R, K]
    report = eval_report(coco_eval, records.class_names, coco_metrics(coco_eval, records.class_names))
    checked = 0
    for iou, t in (("0.50", 0), ("0.75", 5)):
        for k, name in enumerate(records.class_names):
            curve = report["pr_curves"][iou][name]
            if precision[t, 0, k] == -1:  # no ground truth of this class: pycocotools has no AP
                assert curve is None
                continue
            assert np.mean(curve) == pytest.approx(precision[t, :, k].mean(), abs=1e-12)
            checked += 1
    assert checked >= 2


@pytest.mark.parametrize("seed", range(4))
def test_confusion_rows_count_each_ground_truth_once_and_diagonal_is_the_true_positives(seed):
    records, detections = random_case(seed)
    report = report_of(records, detections)
    matrix = np.asarray(report["confusion"]["matrix"])
    num_gt = [row["num_gt"] for row in report["per_class"]]
    assert matrix[:-1].sum(1).tolist() == num_gt
    overall = report["best_score_threshold"]["overall"]
    if overall is not None:
        assert matrix.trace() - matrix[-1, -1] == round(overall["recall"] * sum(num_gt))
        kept = matrix[:, :-1].sum()
        assert overall["precision"] == pytest.approx((matrix.trace() - matrix[-1, -1]) / kept)


def test_report_of_no_detections_has_no_threshold_and_every_object_missed(tmp_path):
    records, _ = two_images()
    report = report_of(records, {})
    assert report["best_score_threshold"]["overall"] is None
    assert report["confusion"]["matrix"] == [[0, 0, 2], [0, 0, 1], [0, 0, 0]]
    (tmp_path / "report.json").write_text('{"best_score_threshold": {"overall": null}}')
    with pytest.raises(ValueError, match="no score threshold"):
        read_best_threshold(tmp_path)


def test_read_best_threshold_from_file_or_folder_and_old_files(tmp_path):
    (tmp_path / "report.json").write_text(
        '{"weights": "m.safetensors", "best_score_threshold": {"overall": {"threshold": 0.42}}}'
    )
    assert read_best_threshold(tmp_path) == read_best_threshold(tmp_path / "report.json") == (0.42, "m.safetensors")
    (tmp_path / "old.json").write_text('{"AP": 0.3}')
    with pytest.raises(ValueError, match="run 'gfocal eval' again"):
        read_best_threshold(tmp_path / "old.json")
    with pytest.raises(FileNotFoundError):
        read_best_threshold(tmp_path / "missing.json")
