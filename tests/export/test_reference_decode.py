"""The numpy reference decode gives the detections of ``model.eval()(images)``, for every variant."""

import json

import numpy as np
import pytest
import torch
from busy_models import busy_model
from torchvision.ops import nms as torchvision_nms

from gfocal.export import ExportedDetector
from gfocal.export.reference_decode import DecodeSettings, decode, decode_settings, nms, preprocess, resize_keep_ratio
from gfocal.models.variants import VARIANTS


def settings_of(model):
    return decode_settings(json.dumps(model.config.to_dict()))


#: Every variant, and GFL with each kind of box voting (decoded by the same code after NMS).
DECODED = {name: variant.overrides for name, variant in VARIANTS.items()} | {
    f"gfl-voting-{kind}": {"box_voting": kind, "box_voting_sigma": 0.1} for kind in ("score", "distribution")
}


@pytest.mark.parametrize("name", DECODED)
def test_reference_decode_equals_pytorch_inference(name):
    model = busy_model(max_size=128, **DECODED[name])
    settings = settings_of(model)
    generator = np.random.default_rng(0)
    images = [generator.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((64, 80), (150, 100), (96, 128))]
    with torch.no_grad():
        # one image at a time: a batch pads every image to the largest, which changes the outputs
        expected = [model([torch.from_numpy(image).permute(2, 0, 1)])[0] for image in images]
        for image, wanted in zip(images, expected):
            graph_input, image_size, scale = preprocess(image, settings)
            raw = [o.numpy() for o in ExportedDetector(model, "raw")(torch.from_numpy(graph_input))]
            scores, box_outputs, points, strides = raw[:4]
            factors = raw[4][0] if len(raw) > 4 else None
            got = decode(scores[0], box_outputs[0], points, strides, settings, image_size, scale, factors)
            assert len(wanted["boxes"]) > 3
            assert_same_detections(got, {name: value.numpy() for name, value in wanted.items()})


def assert_same_detections(got, wanted):
    """The same detections in the same order, up to the order of scores that tie within 1e-5: the graph
    resizes and normalises the image itself, so its outputs differ from PyTorch's by about 1e-6, which
    the exponential of anchor deltas (RetinaNet's are not scaled down) makes up to 1e-4 of a coordinate."""
    np.testing.assert_allclose(got["scores"], wanted["scores"], atol=1e-5, rtol=1e-5)
    box_error = np.abs(got["boxes"][:, None] - wanted["boxes"][None]) - 1e-4 * np.abs(wanted["boxes"][None])
    same = (
        (got["labels"][:, None] == wanted["labels"][None])
        & (box_error.max(-1) <= 1e-3)
        & (np.abs(got["scores"][:, None] - wanted["scores"][None]) <= 1e-5)
    )  # [D, D]
    assert same.any(0).all() and same.any(1).all(), "detections differ beyond the order of tied scores"


@pytest.mark.parametrize(
    ("shape", "sizes", "expected_shape"),
    [
        ((37, 50, 3), (96, 128), (95, 128, 3)),  # enlarged; shorter side 96 would make the longer 130 > 128
        ((300, 451, 3), (64, 64), (43, 64, 3)),  # reduced 7x: the antialiasing filter spans many pixels
    ],
)
def test_resize_matches_the_model_resize(shape, sizes, expected_shape):
    from gfocal.image_geometry import resize_image

    image = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    resized, scale_x, scale_y = resize_keep_ratio(image, *sizes)
    assert resized.shape == expected_shape
    expected = resize_image(torch.from_numpy(image).permute(2, 0, 1).float(), resized.shape[:2])
    np.testing.assert_allclose(resized, expected.permute(1, 2, 0).numpy(), atol=2e-3)
    assert (scale_x, scale_y) == (resized.shape[1] / shape[1], resized.shape[0] / shape[0])


def test_padding_with_the_mean_colour_does_not_change_detections():
    model = busy_model(max_size=128)
    settings = settings_of(model)
    image = np.random.default_rng(2).integers(0, 256, (72, 100, 3), dtype=np.uint8)
    unpadded, size, scale = preprocess(image, settings)
    padded, _, _ = preprocess(image, settings, pad=True)
    assert unpadded.shape == (1, 3, 92, 128) and padded.shape == (1, 3, 96, 128)
    with torch.no_grad():
        wrapper = ExportedDetector(model, "raw")
        a = [o.numpy() for o in wrapper(torch.from_numpy(unpadded))]
        b = [o.numpy() for o in wrapper(torch.from_numpy(padded))]
    got_a = decode(a[0][0], a[1][0], a[2], a[3], settings, size, scale)
    got_b = decode(b[0][0], b[1][0], b[2], b[3], settings, size, scale)
    np.testing.assert_array_equal(got_a["labels"], got_b["labels"])
    np.testing.assert_allclose(got_a["boxes"], got_b["boxes"], atol=1e-3)


def test_numpy_nms_equals_torchvision():
    generator = torch.Generator().manual_seed(3)
    corners = torch.rand(300, 2, generator=generator) * 100
    boxes = torch.cat((corners, corners + 5 + torch.rand(300, 2, generator=generator) * 40), 1)
    scores = torch.rand(300, generator=generator)
    for threshold in (0.3, 0.6):
        np.testing.assert_array_equal(
            nms(boxes.numpy(), scores.numpy(), threshold), torchvision_nms(boxes, scores, threshold).numpy()
        )


def test_no_detections_gives_empty_arrays():
    settings = DecodeSettings(num_classes=2, score_threshold=0.9)
    points = np.zeros((5, 2), np.float32)
    got = decode(
        np.zeros((5, 2), np.float32),
        np.zeros((5, 68), np.float32),
        points,
        np.full(5, 8.0, np.float32),
        settings,
        (32, 32),
    )
    assert got["boxes"].shape == (0, 4) and got["labels"].shape == (0,)


def test_a_box_the_clipping_empties_is_dropped():
    """As the model's post-processing (tests/models/test_postprocess.py): a location beyond the image whose
    box clips to zero width or height gives no detection; one whose box reaches into the image does."""
    points = np.array([[8.0, 8.0], [56.0, 16.0], [56.0, 56.0], [48.0, 56.0]], np.float32)
    boxes = np.array([[2, 2, 14, 14], [30, 10, 62, 22], [50, 50, 62, 62], [44, 20, 52, 62]], np.float32)
    distances = np.concatenate([points - boxes[:, :2], boxes[:, 2:] - points], axis=1) / 8.0  # Dirac, strides
    scores = np.zeros((4, 2), np.float32)
    scores[[0, 1, 2, 3], [0, 1, 0, 1]] = [0.5, 0.7, 0.9, 0.8]
    got = decode(scores, distances, points, np.full(4, 8.0, np.float32), DecodeSettings(num_classes=2), (40, 40))
    np.testing.assert_allclose(got["scores"], [0.7, 0.5])
    np.testing.assert_allclose(got["boxes"], [[30, 10, 40, 22], [2, 2, 14, 14]])
