import json

import pytest
import torch
from torch import nn

from gfocal.engine.evaluate import (
    coco_ground_truth,
    evaluate_detections,
    evaluate_model,
    format_results,
    save_results,
    to_original_coordinates,
)
from support.standin import Ann, Img, Records, collate


def make_records():
    return Records(
        [
            Img(100, 80, [Ann((10, 10, 50, 40), 0), Ann((60, 20, 90, 70), 1)]),
            Img(64, 64, []),  # an image without boxes
            Img(
                120,
                90,
                [
                    Ann((5, 5, 100, 85), 1),
                    Ann((0, 0, 10, 10), 0, iscrowd=True),
                    Ann((20, 20, 30, 30), 0, difficult=True),
                ],
            ),
        ],
        ["cat", "dog", "bird"],
    )


def exact_detections(records, shift=0.0):
    detections = {}
    for index, image in enumerate(records.images):
        anns = [a for a in image.annotations if not (a.iscrowd or a.difficult)]
        detections[index] = {
            "boxes": torch.tensor([a.box for a in anns], dtype=torch.float32).reshape(-1, 4) + shift,
            "scores": torch.linspace(0.9, 0.5, len(anns)),
            "labels": torch.tensor([a.label for a in anns], dtype=torch.int64),
        }
    return detections


def test_ground_truth_dict():
    gt = coco_ground_truth(make_records())
    assert [a["id"] for a in gt["annotations"]] == [1, 2, 3, 4, 5]
    assert [a["iscrowd"] for a in gt["annotations"]] == [0, 0, 0, 1, 1]
    assert gt["annotations"][0]["bbox"] == [10, 10, 40, 30] and gt["annotations"][0]["area"] == 1200
    assert len(gt["images"]) == 3 and gt["categories"][2] == {"id": 2, "name": "bird"}


def test_perfect_predictions_give_ap_one():
    records = make_records()
    results = evaluate_detections(records, exact_detections(records))
    assert results["AP"] == pytest.approx(1.0) and results["AP50"] == pytest.approx(1.0)
    assert results["AP75"] == pytest.approx(1.0)
    per_class = {row["class"]: row for row in results["per_class"]}
    assert per_class["cat"]["AP"] == pytest.approx(1.0) and per_class["dog"]["num_gt"] == 2
    assert per_class["bird"]["AP"] == -1.0 and per_class["bird"]["num_gt"] == 0  # nothing to measure


def test_detections_on_crowd_and_difficult_boxes_are_ignored():
    records = make_records()
    detections = exact_detections(records)
    detections[2] = {
        "boxes": torch.tensor([[5.0, 5, 100, 85], [0, 0, 10, 10], [20, 20, 30, 30]]),
        "scores": torch.tensor([0.5, 0.99, 0.98]),
        "labels": torch.tensor([1, 0, 0]),
    }
    assert evaluate_detections(records, detections)["AP"] == pytest.approx(1.0)


def test_perturbed_predictions_score_below_one():
    records = make_records()
    results = evaluate_detections(records, exact_detections(records, shift=4.0))
    assert 0 < results["AP"] < 1 and results["AP50"] == pytest.approx(1.0)


def test_ap_per_iou_threshold_falls_with_the_threshold_and_averages_to_ap():
    records = make_records()
    results = evaluate_detections(records, exact_detections(records, shift=4.0))
    per_iou = results["AP_per_iou"]
    assert list(per_iou) == [f"{0.5 + 0.05 * t:.2f}" for t in range(10)]
    assert per_iou["0.50"] == pytest.approx(results["AP50"]) and per_iou["0.75"] == pytest.approx(results["AP75"])
    assert sum(per_iou.values()) / 10 == pytest.approx(results["AP"])
    assert per_iou["0.95"] < per_iou["0.50"]


def test_empty_prediction_set_gives_zero():
    results = evaluate_detections(make_records(), {})
    assert results["AP"] == 0.0 and results["AP50"] == 0.0
    assert [row["AP"] for row in results["per_class"]] == [0.0, 0.0, -1.0]
    assert "cat" in format_results(results)


def test_to_original_coordinates_undoes_the_resize_and_clips():
    pred = {"boxes": torch.tensor([[20.0, 10, 300, 60]]), "scores": torch.tensor([0.5]), "labels": torch.tensor([1])}
    mapped = to_original_coordinates(pred, scale=2.0, orig_size=(40, 100))
    assert mapped["boxes"].tolist() == [[10.0, 5.0, 100.0, 30.0]]


class Oracle(nn.Module):
    """Returns fixed detections (in transformed pixels), one list entry per call order."""

    def __init__(self, outputs):
        super().__init__()
        self.outputs, self.calls = outputs, 0

    def forward(self, images, targets=None):
        out = self.outputs[self.calls : self.calls + len(images)]
        self.calls += len(images)
        return out


def test_evaluate_model_maps_back_with_scale():
    records = make_records()
    exact = exact_detections(records)
    scale = 0.5
    dataset = [
        (torch.zeros(3, 8, 8, dtype=torch.uint8), {"image_id": i, "orig_size": (img.height, img.width), "scale": scale})
        for i, img in enumerate(records.images)
    ]
    outputs = [{**exact[i], "boxes": exact[i]["boxes"] * scale} for i in range(3)]
    results = evaluate_model(Oracle(outputs), dataset, records, collate, torch.device("cpu"), batch_size=2)
    assert results["AP"] == pytest.approx(1.0)


def test_save_results_writes_json(tmp_path):
    results = evaluate_detections(make_records(), {})
    save_results(tmp_path / "eval" / "r.json", results)
    assert json.loads((tmp_path / "eval" / "r.json").read_text())["per_class"][0]["class"] == "cat"
