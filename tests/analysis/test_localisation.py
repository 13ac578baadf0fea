"""The localisation diagnosis on hand-built detections whose answers are known: IoU, signed edge errors,
the score-IoU rank correlation, COCO's greedy duplicates and the three oracles."""

from __future__ import annotations

import json

import pytest
import torch

from gfocal.analysis.localisation import (
    box_error_statistics,
    diagnose_localisation,
    duplicate_statistics,
    edge_errors,
    iou_statistics,
    object_matches,
    score_iou_correlation,
)
from gfocal.analysis.localisation_oracles import oracle_decomposition, oracle_detections
from gfocal.analysis.localisation_shape import shape_at_objects
from gfocal.analysis.matching import greedy_duplicates, image_pairs
from support.standin import Ann, Img, Records

BOX = (100.0, 100.0, 200.0, 300.0)  # 100 wide, 200 high


def records(*boxes, crowd=()):
    annotations = [Ann(box, 0) for box in boxes] + [Ann(box, 0, iscrowd=True) for box in crowd]
    return Records([Img(400, 400, annotations)], ["tree"])


def detections(*boxes, scores=None, labels=None):
    count = len(boxes)
    return {
        0: {
            "boxes": torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4),
            "scores": torch.tensor(scores if scores is not None else [0.9] * count, dtype=torch.float64),
            "labels": torch.tensor(labels if labels is not None else [0] * count),
        }
    }


def shifted(box, dx):
    x1, y1, x2, y2 = box
    return (x1 + dx, y1, x2 + dx, y2)


def test_a_detection_exactly_on_the_box_has_iou_one_and_no_edge_error():
    data = records(BOX)
    result = diagnose_localisation(data, detections(BOX))
    assert result["best_iou"]["quantiles"]["p50"] == pytest.approx(1.0)
    assert result["best_iou"]["share_iou_075"] == 1.0 and result["best_iou"]["histogram"]["counts"][-1] == 1
    errors = result["box_errors"]
    assert [errors["edges"][edge]["median"] for edge in ("left", "top", "right", "bottom")] == [0.0] * 4
    assert errors["width_ratio"] == 1.0 and errors["height_ratio"] == 1.0 and errors["centre_shift_x"] == 0.0
    assert result["oracles"]["original"]["AP75"] == pytest.approx(1.0)
    json.dumps(result)  # JSON-ready as it is


def test_a_box_ten_percent_too_large_on_each_side_has_edge_errors_of_plus_a_tenth_and_ratio_1_2():
    larger = (90.0, 80.0, 210.0, 320.0)  # 10 px = 10 % of the width, 20 px = 10 % of the height
    assert edge_errors(torch.tensor([larger]), torch.tensor([BOX])).tolist() == [pytest.approx([0.1] * 4)]
    statistics = box_error_statistics(torch.tensor([larger]), torch.tensor([BOX]))
    assert statistics["edges"]["bottom"] == {"median": pytest.approx(0.1), "q25": pytest.approx(0.1),
                                              "q75": pytest.approx(0.1)}  # fmt: skip
    assert statistics["width_ratio"] == pytest.approx(1.2) and statistics["height_ratio"] == pytest.approx(1.2)
    assert statistics["centre_shift_x"] == 0.0 and statistics["centre_shift_y"] == 0.0
    smaller_shifted = (110.0, 100.0, 190.0, 300.0)  # narrower by 10 px each side, then moved 20 px right
    errors = edge_errors(torch.tensor([shifted(smaller_shifted, 20)]), torch.tensor([BOX]))
    assert errors.tolist() == [pytest.approx([-0.3, 0.0, 0.1, 0.0])]
    assert box_error_statistics(torch.tensor([shifted(smaller_shifted, 20)]), torch.tensor([BOX]))[
        "centre_shift_x"
    ] == pytest.approx(0.2)


def test_best_iou_is_among_confident_detections_and_among_all():
    half = (100.0, 100.0, 150.0, 300.0)  # IoU 0.5
    pairs = image_pairs(records(BOX, (300.0, 300.0, 350.0, 350.0)), detections(BOX, half, scores=[0.1, 0.8]))
    matches = object_matches(pairs, score_threshold=0.3)
    assert matches.iou.tolist() == [pytest.approx(0.5), 0.0]  # the exact box scores below the threshold
    assert matches.detection.tolist() == [1, -1] and matches.boxes[1].isnan().all()
    assert matches.iou_any_score.tolist() == [pytest.approx(1.0), 0.0]
    statistics = iou_statistics(matches.iou)
    assert statistics["share_iou_050"] == 0.5 and statistics["share_iou_075"] == 0.0
    assert statistics["histogram"]["counts"][0] == 1 and statistics["histogram"]["counts"][10] == 1
    assert sum(statistics["histogram"]["counts"]) == 2 and len(statistics["histogram"]["edges"]) == 21


def test_crowd_boxes_are_not_objects():
    result = diagnose_localisation(records(BOX, crowd=[(0.0, 0.0, 50.0, 50.0)]), detections(BOX))
    assert result["best_iou"]["objects"] == 1


def test_a_second_detection_of_a_claimed_object_is_a_duplicate_and_counted():
    near = (100.0, 100.0, 200.0, 250.0)  # IoU 0.75 with BOX
    pairs = image_pairs(records(BOX), detections(BOX, near, (300.0, 0.0, 350.0, 50.0), scores=[0.9, 0.8, 0.7]))
    assert greedy_duplicates(pairs[0], 0.5).tolist() == [False, True, False]  # the third is background
    statistics = duplicate_statistics(pairs, score_threshold=0.3)
    assert statistics["iou_050"] == {"count": 1, "count_confident": 1, "share_confident": pytest.approx(1 / 3)}
    assert statistics["iou_075"]["count"] == 1
    assert duplicate_statistics(pairs, score_threshold=0.85)["iou_050"]["count_confident"] == 0


def test_a_detection_that_overlaps_a_claimed_object_but_also_a_free_one_is_not_a_duplicate():
    left, right = (0.0, 0.0, 100.0, 100.0), (60.0, 0.0, 160.0, 100.0)
    between = (30.0, 0.0, 130.0, 100.0)  # IoU 0.54 with both
    pairs = image_pairs(records(left, right), detections(left, between, scores=[0.9, 0.5]))
    assert greedy_duplicates(pairs[0], 0.5).tolist() == [False, False]  # it claims the right one, as COCO would


def test_spearman_is_one_for_perfectly_ranked_scores_and_minus_one_for_reversed():
    objects = [(x, 0.0, x + 100.0, 100.0) for x in (0.0, 200.0, 400.0, 600.0)]
    boxes = [(x1, 0.0, x2 - cut, 100.0) for (x1, _, x2, _), cut in zip(objects, (0, 10, 20, 30))]  # IoU falls
    data = records(*objects)
    ranked = image_pairs(data, detections(*boxes, scores=[0.9, 0.8, 0.7, 0.6]))
    assert score_iou_correlation(ranked) == {"spearman": pytest.approx(1.0), "detections": 4}
    reversed_ = image_pairs(data, detections(*boxes, scores=[0.6, 0.7, 0.8, 0.9]))
    assert score_iou_correlation(reversed_)["spearman"] == pytest.approx(-1.0)


def test_perfect_boxes_raise_ap75_of_shifted_boxes_to_one_and_the_verdict_names_the_regression():
    objects = [(x, 0.0, x + 100.0, 100.0) for x in (0.0, 200.0)]
    moved = [shifted(box, 20.0) for box in objects]  # IoU 80/120 = 0.67: found, but not at 0.75
    data = records(*objects)
    pairs = image_pairs(data, detections(*moved, scores=[0.9, 0.8]))
    assert [box.tolist() for box in oracle_detections(pairs, "perfect_boxes")[0]["boxes"]] == [
        list(box) for box in objects
    ]
    result = oracle_decomposition(data, pairs)
    original, boxes = result["oracles"]["original"], result["oracles"]["perfect_boxes"]
    assert original["AP50"] == pytest.approx(1.0) and original["AP75"] == pytest.approx(0.0)
    assert boxes["AP75"] == pytest.approx(1.0) and boxes["gain"]["AP75"] == pytest.approx(1.0)
    assert result["oracles"]["perfect_ranking"]["gain"]["AP75"] == pytest.approx(0.0)
    assert result["largest_ap75_gain"] == "perfect_boxes"
    assert result["verdict"] == (
        "AP75 0.000: lost most in the box regression; AP75 gains: perfect boxes +1.000, perfect ranking +0.000, "
        "no duplicates +0.000"
    )


def test_perfect_ranking_puts_a_background_detection_below_the_objects():
    data = records(BOX)
    pairs = image_pairs(data, detections(BOX, (300.0, 0.0, 350.0, 50.0), scores=[0.5, 0.9]))
    assert oracle_detections(pairs, "perfect_ranking")[0]["scores"].tolist() == [pytest.approx(1.0), 0.0]
    result = oracle_decomposition(data, pairs)
    assert result["oracles"]["original"]["AP"] < 1.0
    assert result["oracles"]["perfect_ranking"]["AP"] == pytest.approx(1.0)
    assert result["oracles"]["perfect_boxes"]["gain"]["AP"] == pytest.approx(0.0)


def test_no_duplicates_removes_the_duplicate_and_recovers_the_ap_it_cost():
    other = (300.0, 100.0, 400.0, 300.0)
    data = records(BOX, other)
    # IoU 1, 0.90 (the duplicate) and 0.82: even ranked by IoU, the duplicate stays above the other object.
    pairs = image_pairs(data, detections(BOX, shifted(BOX, 5.0), shifted(other, 10.0), scores=[0.9, 0.8, 0.7]))
    kept = oracle_detections(pairs, "no_duplicates")[0]
    assert kept["scores"].tolist() == [0.9, 0.7]
    result = oracle_decomposition(data, pairs)
    assert result["oracles"]["original"]["AP50"] < 1.0
    assert result["oracles"]["no_duplicates"]["AP50"] == pytest.approx(1.0)
    assert result["oracles"]["perfect_ranking"]["gain"]["AP75"] == pytest.approx(0.0)
    assert result["largest_ap75_gain"] == "no_duplicates" and "duplicate handling" in result["verdict"]


def test_oracles_leave_the_detections_given_untouched():
    data = records(BOX)
    given = detections(shifted(BOX, 20.0), shifted(BOX, 25.0), scores=[0.9, 0.8])
    before = {key: value.clone() for key, value in given[0].items()}
    diagnose_localisation(data, given)
    assert all(torch.equal(before[key], given[0][key]) for key in before)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({5: {"boxes": [], "scores": [], "labels": []}}, "not in the dataset"),
        ({0: {"boxes": [[0, 0, 1, 1]], "scores": [0.5]}}, "lack"),
        ({0: {"boxes": [[0, 0, 1, 1]], "scores": [0.5, 0.4], "labels": [0]}}, "1 boxes, 2 scores"),
        ({0: {"boxes": [[5, 0, 1, 1]], "scores": [0.5], "labels": [0]}}, "x2 >= x1"),
        ({0: {"boxes": [[0, 0, 1, 1]], "scores": [1.5], "labels": [0]}}, "scores must lie"),
        ({0: {"boxes": [[0, 0, 1, 1]], "scores": [0.5], "labels": [1]}}, r"labels must lie in 0\.\.0"),
    ],
)
def test_bad_detections_are_refused_with_the_image_and_the_problem(given, message):
    with pytest.raises(ValueError, match=message):
        diagnose_localisation(records(BOX), given)


def test_bad_thresholds_are_refused():
    with pytest.raises(ValueError, match="score_threshold"):
        diagnose_localisation(records(BOX), detections(BOX), score_threshold=1.5)
    with pytest.raises(ValueError, match="found_iou"):
        diagnose_localisation(records(BOX), detections(BOX), found_iou=0.0)
    with pytest.raises(ValueError, match="unknown oracle"):
        oracle_detections(image_pairs(records(BOX), detections(BOX)), "perfect_everything")


def test_shape_at_objects_reads_the_best_match_and_the_iou_falls_with_the_width():
    objects = [(x, 0.0, x + 100.0, 100.0) for x in (0.0, 200.0, 400.0, 600.0)]
    boxes = [(x1, 0.0, x2 - cut, 100.0) for (x1, _, x2, _), cut in zip(objects, (0, 10, 20, 30))]  # IoU falls
    background = (900.0, 900.0, 950.0, 950.0)
    given = detections(*boxes, background, scores=[0.9] * 5)
    std = torch.tensor([[1.0] * 4, [2.0] * 4, [4.0] * 4, [8.0] * 4, [50.0] * 4])  # pixels, objects 100 px
    two_peaked = torch.zeros(5, 4, dtype=torch.bool)
    two_peaked[3, 0] = True  # the widest object's left edge
    shape = shape_at_objects(records(*objects), given, {0: {"std": std, "two_peaked": two_peaked}})
    assert shape["objects"] == 4  # the background detection is nobody's best match
    assert shape["edges"]["left"]["share_two_peaked"] == 0.25 and shape["edges"]["right"]["share_two_peaked"] == 0
    assert shape["edges"]["top"]["std_relative"]["p50"] == pytest.approx(0.03)  # median of 1, 2, 4, 8 % of 100 px
    quartiles = shape["iou_by_width_quartile"]
    assert [q["width_low"] for q in quartiles] == pytest.approx([0.01, 0.02, 0.04, 0.08])
    assert [q["median_iou"] for q in quartiles] == pytest.approx([1.0, 0.9, 0.8, 0.7])
    assert shape["spearman_width_iou"] == pytest.approx(-1.0)
    assert shape["median_iou_two_peaked"] == pytest.approx(0.7) and shape["median_iou_one_peak"] == pytest.approx(0.9)
    with pytest.raises(ValueError, match="shapes must be"):
        shape_at_objects(records(*objects), given, {0: {"std": std[:4], "two_peaked": two_peaked[:4]}})


def test_predict_with_shapes_gives_one_shape_per_detection_that_the_diagnosis_reads(tiny_coco):
    from gfocal.analysis.localisation_shape import predict_with_shapes
    from gfocal.data import load_dataset
    from gfocal.models import gfl_small

    torch.manual_seed(0)
    model = gfl_small(4, min_size=64, max_size=64, score_threshold=0.0, max_detections=20)  # untrained: keep all
    data = load_dataset(tiny_coco)
    found, shapes = predict_with_shapes(model, data, batch_size=2)
    assert sorted(found) == sorted(shapes) == list(range(len(data.images)))
    for index, detection in found.items():
        assert shapes[index]["std"].shape == shapes[index]["two_peaked"].shape == (len(detection["boxes"]), 4)
        assert (shapes[index]["std"] >= 0).all() and shapes[index]["two_peaked"].dtype == torch.bool
    shape = shape_at_objects(data, found, shapes, score_threshold=0.0, min_iou=0.01)
    assert shape["objects"] == sum(q["objects"] for q in shape["iou_by_width_quartile"]) > 0
    result = diagnose_localisation(data, found, score_threshold=0.0)
    assert result["best_iou"]["objects"] == sum(len(image.annotations) for image in data.images)
