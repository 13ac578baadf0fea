"""The anchor-based ATSS baseline (``box="anchor_delta"``) without mmdetection: the delta coding's
values, its start at the ATSS anchor, and the variant through inference and a weights file.

Its equality with mmdetection's ``ATSSHead`` is tests/interop/test_mmdet_atss_parity.py; its loss
values against a written-out reference are in test_criterion_reference.py.
"""

import math

import torch

from gfocal.models import gfl_small, load_model, save_weights
from gfocal.models.anchor_boxes import AnchorDeltaBoxes
from gfocal.ops import delta_to_box, square_anchors

ANCHOR = {"classification": "focal", "box": "anchor_delta"}
UNIT = (1.0, 1.0, 1.0, 1.0)


def test_delta_coding_known_values():
    anchors = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0], [10.0, 20.0, 30.0, 60.0]])
    deltas = torch.tensor([[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 2.0, -1.0], [0.5, -0.25, 0.0, 10.0]])
    half_e, half_e2, half_ei = math.e / 2, math.exp(2) / 2, math.exp(-1) / 2
    clipped = 40 * 1000 / 16 / 2  # dh = 10 exceeds |log(16/1000)|: the height ratio stops at 1000/16
    expected = torch.tensor(
        [
            [0.0, 0.0, 1.0, 1.0],  # zero deltas: the anchor itself
            [1.5 - half_e, 1.5 - half_e, 1.5 + half_e, 1.5 + half_e],  # centre moves a side, size x e
            [0.5 - half_e2, 0.5 - half_ei, 0.5 + half_e2, 0.5 + half_ei],
            [30.0 - 10.0, 30.0 - clipped, 30.0 + 10.0, 30.0 + clipped],  # centre (20 + 20*0.5, 40 - 40*0.25)
        ]
    )
    torch.testing.assert_close(delta_to_box(anchors, deltas, UNIT), expected)
    # The stds scale the deltas before they are applied.
    torch.testing.assert_close(delta_to_box(anchors, deltas * 10, (0.1, 0.1, 0.1, 0.1)), expected)


def test_square_anchors_are_scale_strides_wide_around_the_points():
    anchors = square_anchors(torch.tensor([[16.0, 24.0]]), torch.tensor([8.0]), 8.0)
    torch.testing.assert_close(anchors, torch.tensor([[-16.0, -8.0, 48.0, 56.0]]))


def test_boxes_start_as_the_atss_anchor():
    torch.manual_seed(0)
    model = gfl_small(3, min_size=64, max_size=64, **ANCHOR).eval()
    assert isinstance(model.head.box_coding, AnchorDeltaBoxes)
    assert (model.head.box_out.bias == 0).all()  # mmdetection's initialisation: zero deltas...
    with torch.no_grad():
        _, grid = model.head_outputs(torch.randn(1, 3, 64, 64))
    zeros = torch.zeros(len(grid.points), 4)
    anchors = square_anchors(grid.points, grid.strides, model.config.anchor_scale)
    # ...are the anchor ATSS assigns with: 8 strides square around the location
    torch.testing.assert_close(model.head.box_coding.decode(zeros, grid.points, grid.strides), anchors)


def test_the_variant_detects_and_a_weights_file_alone_rebuilds_it(tmp_path):
    torch.manual_seed(0)
    model = gfl_small(3, min_size=64, max_size=64, **ANCHOR).eval()
    with torch.no_grad():
        model.head.cls_out.bias.zero_()  # scores ~0.5, so there are detections to compare
    path = save_weights(model, tmp_path / "atss.safetensors")
    loaded = load_model(path).eval()
    assert loaded.config == model.config and loaded.config.box == "anchor_delta"
    images = [torch.rand(3, 64, 48), torch.rand(3, 40, 64)]
    with torch.no_grad():
        expected, actual = model(images), loaded(images)
    for want, got, image in zip(expected, actual, images):
        assert len(want["boxes"]) > 0
        for key in ("boxes", "scores", "labels"):
            torch.testing.assert_close(got[key], want[key], rtol=0, atol=0)
        assert (want["boxes"] >= 0).all() and (want["boxes"][:, 2] <= image.shape[2] + 1e-4).all()
