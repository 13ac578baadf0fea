"""The merges on hand-built tile detections: cut objects, touching objects, an object whole in one tile."""

from functools import partial

import pytest
import torch

from gfocal.tiling import cut_edges, merge_distribution_aware, merge_nmm, merge_nms

# Two tiles of a 60 x 200 image side by side, overlapping on x in [80, 120).
WINDOWS = {"left": [0, 0, 120, 60], "right": [80, 0, 200, 60]}
IMAGE = (60, 200)


def detections(*boxes, std=1.0, label=0):
    """boxes: (xyxy, score, tile name); every edge with standard deviation ``std`` pixels."""
    return (
        {
            "boxes": torch.tensor([b for b, _, _ in boxes], dtype=torch.float32),
            "scores": torch.tensor([s for _, s, _ in boxes]),
            "labels": torch.full((len(boxes),), label),
            "edge_std": torch.full((len(boxes), 4), std),
        },
        torch.tensor([WINDOWS[t] for _, _, t in boxes]),
    )


def cut_of(dets, windows):
    return cut_edges(dets["boxes"], windows, IMAGE, margin=2.0)


def test_cut_edges_only_inner_borders():
    dets, windows = detections(([100, 10, 120, 30], 0.9, "left"), ([80, 0, 130, 20], 0.8, "right"))
    cut = cut_of(dets, windows)
    # Left tile: right edge on its inner border x=120; its top edge is not at y=0 (nor is y=0 inner).
    assert cut[0].tolist() == [False, False, True, False]
    # Right tile: left edge on its inner border x=80; its top edge at y=0 is the image's own edge.
    assert cut[1].tolist() == [True, False, False, False]


def test_cut_edges_reach_by_edge_std():
    dets, windows = detections(([100, 10, 115, 30], 0.9, "left"))
    assert not cut_edges(dets["boxes"], windows, IMAGE, 2.0)[0, 2]
    assert cut_edges(dets["boxes"], windows, IMAGE, 2.0, edge_std=torch.full((1, 4), 4.0))[0, 2]


def test_object_cut_in_two_by_a_border_is_fused_whole():
    # The object [60, 10, 140, 30] is wider than the overlap: each tile sees one part, cut at its border.
    dets, windows = detections(([60, 10, 120, 30], 0.9, "left"), ([80, 10.5, 140, 30], 0.8, "right"))
    merged = merge_distribution_aware(dets, cut_of(dets, windows), edges="mean")
    assert len(merged["boxes"]) == 1
    top = (0.9 * 10 + 0.8 * 10.5) / 1.7  # equal spreads: weighted by score
    assert torch.allclose(merged["boxes"][0], torch.tensor([60, top, 140, 30]))
    assert torch.isclose(merged["scores"][0], torch.tensor(0.9))
    # NMS keeps both truncated halves (their IoU is under 0.5): one object, two wrong boxes.
    assert merge_nms(dets)["boxes"][:, [0, 2]].tolist() == [[60, 120], [80, 140]]


def test_touching_objects_stay_two():
    # Two objects touching at x=100, in the overlap, each seen whole by both tiles, predicted a little wide.
    dets, windows = detections(
        ([78, 10, 101, 30], 0.9, "left"),
        ([99, 10, 121, 30], 0.85, "right"),
        ([79, 10, 102, 30], 0.8, "right"),
        ([98, 10, 120, 30], 0.7, "left"),
    )
    merged = merge_distribution_aware(dets, cut_of(dets, windows), edges="mean")
    assert len(merged["boxes"]) == 2
    first, second = merged["boxes"][merged["boxes"][:, 0].argsort()].tolist()
    # The right tile's view of the first object has its left edge at x=79, on that tile's border x=80:
    # distrusted. So is the left tile's right edge x=120 of the second object.
    assert first == pytest.approx([78, 10, (0.9 * 101 + 0.8 * 102) / 1.7, 30])
    assert second == pytest.approx([(0.85 * 99 + 0.7 * 98) / 1.55, 10, 121, 30])
    assert len(merge_nmm(dets)["boxes"]) == 2  # the baselines keep them apart too here
    assert len(merge_nms(dets)["boxes"]) == 2


def test_whole_view_wins_over_cut_view():
    # The object [100, 10, 130, 30]: the left tile sees it cut at x=120, the right tile sees it whole.
    # The cut view scores higher and its edge is sharp: its right edge must still lose.
    dets, windows = detections(([100, 10, 120, 30], 0.95, "left"), ([101, 10, 130, 30], 0.6, "right"))
    dets["edge_std"][0] = 0.5
    merged = merge_distribution_aware(dets, cut_of(dets, windows), edges="mean")
    assert len(merged["boxes"]) == 1
    left, top, right, bottom = merged["boxes"][0].tolist()
    assert right == 130
    assert 100 < left < 101 and left < 100.5  # both views see the left edge; the sharper one weighs more
    assert torch.isclose(merged["scores"][0], torch.tensor(0.95))


def test_certainty_weights_each_edge():
    dets, windows = detections(([100, 10, 110, 20], 0.5, "left"), ([102, 12, 112, 22], 0.5, "left"))
    dets["edge_std"] = torch.tensor([[1.0, 3.0, 1.0, 3.0], [3.0, 1.0, 3.0, 1.0]])
    merged = merge_distribution_aware(dets, cut_of(dets, windows), edges="mean")["boxes"][0]
    # Weights 1/std^2 give 9:1 to the sharper edge: x from the first box, y from the second.
    assert torch.allclose(merged, torch.tensor([100.2, 11.8, 110.2, 21.8]))


def test_edge_cut_in_every_view_takes_the_outermost():
    dets, windows = detections(([100, 10, 120, 30], 0.9, "left"), ([100, 10, 119, 30], 0.8, "left"))
    merged = merge_distribution_aware(dets, cut_of(dets, windows))
    assert merged["boxes"].tolist() == [[100, 10, 120, 30]]


def test_distributions_follow_the_edge_they_came_from():
    dets, windows = detections(([100, 10, 120, 30], 0.95, "left"), ([101, 10, 130, 30], 0.6, "right"))
    dets["box_distributions"] = torch.stack((torch.full((4, 3), 0.1), torch.full((4, 3), 0.9)))  # [K, 4, B]
    merged = merge_distribution_aware(dets, cut_of(dets, windows))
    right = merged["box_distributions"][0, 2]
    assert torch.allclose(right, torch.full((3,), 0.9))  # the right edge is the whole view's


def test_classes_never_merge():
    dets, windows = detections(([100, 10, 120, 30], 0.9, "left"), ([100, 10, 120, 30], 0.8, "left"))
    dets["labels"] = torch.tensor([0, 1])
    for merged in (merge_distribution_aware(dets, cut_of(dets, windows)), merge_nms(dets), merge_nmm(dets)):
        assert sorted(merged["labels"].tolist()) == [0, 1]


def test_nmm_takes_the_union_and_the_keepers_score():
    dets, _ = detections(([100, 10, 120, 30], 0.9, "left"), ([104, 12, 128, 29], 0.6, "right"))
    merged = merge_nmm(dets)
    assert merged["boxes"].tolist() == [[100, 10, 128, 30]]
    assert merged["scores"].tolist() == pytest.approx([0.9])


def test_nmm_is_greedy_not_transitive():
    # b overlaps a and c, a does not overlap c: a takes b, c stays (SAHI's greedy NMM).
    dets, _ = detections(([0, 0, 10, 10], 0.9, "left"), ([6, 0, 14, 10], 0.8, "left"), ([12, 0, 22, 10], 0.7, "left"))
    assert len(merge_nmm(dets)["boxes"]) == 2


def test_empty_input():
    dets, windows = detections()
    dets["boxes"] = dets["boxes"].reshape(0, 4)
    dets["edge_std"] = dets["edge_std"].reshape(0, 4)
    for merged in (
        merge_distribution_aware(dets, torch.zeros(0, 4, dtype=torch.bool)),
        merge_nms(dets),
        merge_nmm(dets),
    ):
        assert merged["boxes"].shape == (0, 4)


def test_input_not_mutated():
    dets, windows = detections(([60, 10, 120, 30], 0.9, "left"), ([80, 10.5, 140, 30], 0.8, "right"))
    before = {k: v.clone() for k, v in dets.items()}
    merge_distribution_aware(dets, cut_of(dets, windows))
    merge_nmm(dets)
    assert all(torch.equal(before[k], dets[k]) for k in dets)


def test_views_nms_would_join_are_one_object_with_an_iou_rule():
    # One object [90, 10, 110, 30] seen whole by both tiles; the right tile puts its bottom edge 8 px
    # low (29% of the taller box, past the 25% tolerance) but the boxes still overlap by IoU 0.71.
    dets, windows = detections(([90, 10, 110, 30], 0.9, "left"), ([90, 10, 110, 38], 0.8, "right"))
    cut = cut_of(dets, windows)
    merge = partial(merge_distribution_aware, tolerance=0.25, edges="mean")
    assert len(merge(dets, cut, iou_threshold=None)["boxes"]) == 2  # edges alone: a duplicate
    merged = merge(dets, cut, iou_threshold=0.5)
    assert merged["boxes"].tolist() == [pytest.approx([90, 10, 110, (0.9 * 30 + 0.8 * 38) / 1.7])]


def test_iou_rule_keeps_touching_objects_apart():
    dets, windows = detections(([78, 10, 101, 30], 0.9, "left"), ([99, 10, 121, 30], 0.85, "right"))
    assert len(merge_distribution_aware(dets, cut_of(dets, windows), iou_threshold=0.5)["boxes"]) == 2


def test_most_certain_edges_are_taken_not_averaged():
    dets, windows = detections(([100, 10, 110, 20], 0.5, "left"), ([102, 12, 112, 22], 0.5, "left"))
    dets["edge_std"] = torch.tensor([[1.0, 3.0, 1.0, 3.0], [3.0, 1.0, 3.0, 1.0]])
    merged = merge_distribution_aware(dets, cut_of(dets, windows), edges="most_certain")["boxes"][0]
    assert merged.tolist() == [100, 12, 110, 22]  # x from the first box, y from the second, unmoved


def test_default_edges_are_the_certainty_weighted_mean():
    # Chosen on a real photograph (#28): on soft crown boundaries the sharpest edge is not the best one.
    dets, windows = detections(([100, 10, 110, 20], 0.5, "left"), ([102, 12, 112, 22], 0.5, "left"))
    dets["edge_std"] = torch.tensor([[1.0, 3.0, 1.0, 3.0], [3.0, 1.0, 3.0, 1.0]])
    merged = merge_distribution_aware(dets, cut_of(dets, windows))["boxes"][0]
    assert merged.tolist() == pytest.approx([100.2, 11.8, 110.2, 21.8])  # weights 9:1 to the sharper edge


def test_default_tolerance_keeps_overlapping_neighbours_apart():
    # Two crowns whose boxes overlap (IoU 0.42), offset by 30% of a side in x and 15% in y, in one tile:
    # the edge rule at 50% (the default before #28) joined them into one; at 25% they stay two.
    dets, windows = detections(([10, 10, 50, 50], 0.9, "left"), ([22, 16, 62, 56], 0.8, "left"))
    cut = cut_of(dets, windows)
    assert len(merge_distribution_aware(dets, cut, tolerance=0.5)["boxes"]) == 1
    merged = merge_distribution_aware(dets, cut)
    assert merged["boxes"].flatten().tolist() == pytest.approx([10, 10, 50, 50, 22, 16, 62, 56])


def test_most_certain_edges_skip_cut_ones_and_keep_their_distribution():
    # The cut view scores higher and its edges are sharper; its cut right edge still loses to the whole view's.
    dets, windows = detections(([100, 10, 120, 30], 0.95, "left"), ([101, 11, 130, 30], 0.6, "right"))
    dets["edge_std"][0] = 0.5
    dets["box_distributions"] = torch.stack((torch.full((4, 3), 0.1), torch.full((4, 3), 0.9)))  # [K, 4, B]
    merged = merge_distribution_aware(dets, cut_of(dets, windows), edges="most_certain")
    assert merged["boxes"].tolist() == [[100, 10, 130, 30]]
    assert merged["box_distributions"][0, :, 0].tolist() == pytest.approx([0.1, 0.1, 0.9, 0.1])


def test_unknown_edge_fusion_is_an_error():
    dets, windows = detections(([100, 10, 120, 30], 0.9, "left"))
    with pytest.raises(ValueError, match="most_certain"):
        merge_distribution_aware(dets, cut_of(dets, windows), edges="median")
