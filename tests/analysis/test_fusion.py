"""Fusion of pooled detections on hand-built boxes whose fused answer is known."""

import pytest
import torch

from gfocal.analysis.fusion import TestTimeAugmentation, _unflip, cluster_detections, fuse_detections, view_detections
from gfocal.models import gfl_small


def pooled(boxes, scores, labels, stds):
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32),
        "scores": torch.tensor(scores),
        "labels": torch.tensor(labels),
        "edge_std": torch.tensor(stds, dtype=torch.float32),
    }


# Two views of one object: view A is sure of its left and top edges, view B of its right and bottom ones.
TWO_VIEWS = pooled([[10, 10, 50, 50], [14, 14, 54, 54]], [0.8, 0.8], [0, 0], [[1, 1, 4, 4], [4, 4, 1, 1]])


def test_distribution_fusion_takes_each_edge_from_the_view_sure_of_it():
    fused = fuse_detections(TWO_VIEWS, "distribution", num_views=2)
    # Weights score / std^2: 0.8 and 0.05 on the left edge -> (0.8*10 + 0.05*14) / 0.85.
    sure, unsure = 0.8 / 1.0, 0.8 / 16.0
    left = (sure * 10 + unsure * 14) / (sure + unsure)
    right = (unsure * 50 + sure * 54) / (sure + unsure)
    torch.testing.assert_close(fused["boxes"], torch.tensor([[left, left, right, right]]))
    assert fused["scores"].tolist() == pytest.approx([0.8])  # both views found it
    # The mixture's spread: each view's variance plus its distance to the fused edge.
    variance = (sure * (1 + (10 - left) ** 2) + unsure * (16 + (14 - left) ** 2)) / (sure + unsure)
    assert fused["edge_std"][0, 0] == pytest.approx(variance**0.5, rel=1e-5)


def test_wbf_and_nms_ignore_the_distributions():
    wbf = fuse_detections(TWO_VIEWS, "wbf", num_views=2)
    torch.testing.assert_close(wbf["boxes"], torch.tensor([[12.0, 12.0, 52.0, 52.0]]))
    nms = fuse_detections(TWO_VIEWS, "nms", num_views=2)
    torch.testing.assert_close(nms["boxes"], TWO_VIEWS["boxes"][:1])  # equal scores: the first box leads


def test_other_classes_and_far_boxes_stay_apart_and_lonely_boxes_lose_score():
    detections = pooled(
        [[10, 10, 50, 50], [11, 11, 51, 51], [10, 10, 50, 50], [100, 100, 140, 140]],
        [0.9, 0.6, 0.7, 0.5],
        [0, 0, 1, 0],
        [[2, 2, 2, 2]] * 4,
    )
    fused = fuse_detections(detections, "distribution", num_views=2)
    assert fused["labels"].tolist() == [0, 1, 0]
    # Cluster of two found by both views: mean score 0.75; the others by one of two views: halved.
    assert fused["scores"].tolist() == pytest.approx([0.75, 0.35, 0.25])
    leaders, assign = cluster_detections(detections["boxes"], detections["scores"], detections["labels"])
    assert assign.tolist() == [0, 0, 1, 2] and leaders.tolist() == [0, 2, 3]


def test_fusion_does_not_depend_on_the_order_of_the_views():
    generator = torch.Generator().manual_seed(0)
    corners = torch.rand(30, 2, generator=generator) * 80
    detections = {
        "boxes": torch.cat((corners, corners + 10 + torch.rand(30, 2, generator=generator) * 40), dim=1),
        "scores": torch.rand(30, generator=generator),
        "labels": torch.randint(0, 2, (30,), generator=generator),
        "edge_std": torch.rand(30, 4, generator=generator) * 5,
    }
    order = torch.randperm(30, generator=generator)
    shuffled = {key: value[order] for key, value in detections.items()}
    for method in ("nms", "wbf", "distribution"):
        a, b = fuse_detections(detections, method, 3), fuse_detections(shuffled, method, 3)
        for key in a:
            torch.testing.assert_close(a[key], b[key])


def test_one_view_of_separate_boxes_is_left_alone():
    detections = pooled([[0, 0, 10, 10], [20, 20, 30, 30]], [0.9, 0.4], [0, 0], [[1, 1, 1, 1], [2, 2, 2, 2]])
    for method in ("nms", "wbf", "distribution"):
        fused = fuse_detections(detections, method)
        torch.testing.assert_close(fused["boxes"], detections["boxes"])
        torch.testing.assert_close(fused["scores"], detections["scores"])
    assert len(fuse_detections({k: v[:0] for k, v in detections.items()}, "distribution")["boxes"]) == 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="method"):
        fuse_detections(TWO_VIEWS, "average")
    with pytest.raises(ValueError, match="edge_std"):
        fuse_detections({k: v for k, v in TWO_VIEWS.items() if k != "edge_std"}, "distribution")
    with pytest.raises(ValueError, match="scales"):
        TestTimeAugmentation(scales=(0.0,))


def test_unflip_mirrors_boxes_and_swaps_left_and_right():
    flipped = _unflip(pooled([[10, 5, 30, 25]], [0.5], [0], [[1, 2, 3, 4]]), width=100)
    assert flipped["boxes"].tolist() == [[70, 5, 90, 25]]
    assert flipped["edge_std"].tolist() == [[3, 2, 1, 4]]


def test_views_of_a_model_pool_every_view():
    torch.manual_seed(0)
    model = gfl_small(2, min_size=64, max_size=64, score_threshold=0.0, max_detections=7).eval()
    image = torch.rand(3, 48, 64)
    with torch.no_grad():
        plain = model([image], return_distributions=True)[0]
        mirrored = _unflip(model([image.flip(-1)], return_distributions=True)[0], 64)
        larger = model([image], return_distributions=True, input_size=(96, 96))[0]
    [views] = view_detections([model], [image], TestTimeAugmentation(flip=True))
    for key in ("boxes", "scores", "labels", "edge_std"):
        torch.testing.assert_close(views[key], torch.cat((plain[key], mirrored[key])))
    [views] = view_detections([model, model], [image], TestTimeAugmentation(scales=(1.0, 1.5)))
    expected = torch.cat((plain["boxes"], larger["boxes"], plain["boxes"], larger["boxes"]))
    torch.testing.assert_close(views["boxes"], expected)
