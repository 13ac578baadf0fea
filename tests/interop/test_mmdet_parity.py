"""Our detections equal mmdetection's for an imported GFL checkpoint.

mmdetection is not a dependency: ``bash .ci/install_mmdet DIR`` installs mmdetection 3.3.0 with the
pure-Python ``mmcv-lite`` into DIR, then ``PYTHONPATH=DIR pytest -m mmdet tests/interop`` runs the
parity tests (``.ci/run`` does both; see ``conftest.py`` here for what skips and what fails).
``mmcv-lite`` has no compiled ``mmcv.ops``; ``tests/interop/mmcv_ops_standin.py`` provides the ``nms`` and
``batched_nms`` GFL inference calls, on top of torchvision.
"""

import pytest
import torch
from mmdet_reference import build_mmdet_gfl

from gfocal.interop import from_mmdet, save_mmdet_checkpoint
from gfocal.models.postprocess import postprocess_image

pytestmark = pytest.mark.mmdet

NUM_CLASSES = 3


def mmdet_detections(model, batch, image_size):
    from mmdet.structures import DetDataSample

    height, width = image_size
    sample = DetDataSample(
        metainfo=dict(
            img_shape=(height, width),
            ori_shape=(height, width),
            pad_shape=tuple(batch.shape[-2:]),
            scale_factor=(1.0, 1.0),
        )
    )
    with torch.no_grad():
        result = model.predict(batch, [sample], rescale=False)[0].pred_instances
    return result.bboxes, result.scores, result.labels


@pytest.mark.parametrize("depth, stacked_convs, reg_max", [(18, 2, 16), (50, 1, 8)])
def test_detections_equal_mmdetection(depth, stacked_convs, reg_max):
    reference = build_mmdet_gfl(NUM_CLASSES, depth, 64, stacked_convs, reg_max, random_weights=True)
    ours = from_mmdet(reference.state_dict())
    assert ours.config.backbone == f"resnet{depth}" and ours.config.reg_max == reg_max
    torch.manual_seed(1)
    batch = torch.randn(1, 3, 96, 128)  # a normalised, padded input
    image_size = (90, 120)  # the image inside the padding: boxes are clipped to it
    expected_boxes, expected_scores, expected_labels = mmdet_detections(reference, batch, image_size)
    with torch.no_grad():
        scored = ours.scored_outputs(batch)
        cls_levels, box_levels = reference.bbox_head(reference.extract_feat(batch))
    # Per-location outputs first (every level, P7 included), then the detections.
    flatten = lambda levels: torch.cat([level.flatten(2).transpose(1, 2) for level in levels], 1)  # noqa: E731
    torch.testing.assert_close(scored.scores, flatten(cls_levels).sigmoid(), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(scored.box_outputs, flatten(box_levels), atol=1e-4, rtol=1e-4)
    actual = postprocess_image(
        ours.config, ours.head.box_coding, scored.scores[0], None, scored.box_outputs[0], scored.grid, image_size
    )
    assert len(expected_boxes) > 10
    assert torch.equal(actual["labels"], expected_labels)
    torch.testing.assert_close(actual["boxes"], expected_boxes, atol=1e-3, rtol=0)
    torch.testing.assert_close(actual["scores"], expected_scores, atol=1e-5, rtol=1e-5)


def test_a_written_checkpoint_is_the_state_dict_mmdetection_holds(tmp_path):
    reference = build_mmdet_gfl(NUM_CLASSES, 18, 64, 2, 16, random_weights=True)
    path = save_mmdet_checkpoint(from_mmdet(reference.state_dict(), class_names=("a", "b", "c")), tmp_path / "w.pth")
    written = torch.load(path, weights_only=True)
    assert sorted(written["state_dict"]) == sorted(reference.state_dict())
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(written["state_dict"][key], value, msg=key)
    reference.load_state_dict(written["state_dict"], strict=True)
