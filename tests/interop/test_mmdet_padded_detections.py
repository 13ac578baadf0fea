"""Detections of images in a zero-padded batch equal mmdetection 3.3's ``predict_by_feat``, GFL and ATSS heads.

Each image is smaller than the batch, so locations in its padding (another image's extent) are decoded
too; their boxes, clipped to the image, are often empty. mmdetection's ``min_bbox_size=0`` keeps only
boxes with width and height > 0, and so does :func:`gfocal.models.postprocess.postprocess_image`.
"""

import pytest
import torch
from test_mmdet_atss_parity import CONFIG as ATSS_CONFIG
from test_mmdet_atss_parity import batch_grid, head_outputs, mmdet_atss_head
from test_mmdet_training_parity import (
    BATCH_SHAPE,
    IMAGE_SIZES,
    NUM_CLASSES,
    REG_MAX,
    STRIDES,
    mmdet_gfl_head,
    to_levels,
)

from gfocal.models import ModelConfig
from gfocal.models.components import build_box_coding
from gfocal.models.postprocess import postprocess_image
from gfocal.models.quality import SeparateCenterness

pytestmark = pytest.mark.mmdet

GFL_CONFIG = ModelConfig(num_classes=NUM_CLASSES, reg_max=REG_MAX, strides=STRIDES)
TEST_CFG = dict(nms_pre=1000, min_bbox_size=0, score_thr=0.05, nms=dict(type="nms", iou_threshold=0.6), max_per_img=100)
SMALL_IMAGES = [size for size in IMAGE_SIZES if size != BATCH_SHAPE]


def _meta(size):
    return {"img_shape": size, "pad_shape": BATCH_SHAPE, "batch_input_shape": BATCH_SHAPE, "scale_factor": (1.0, 1.0)}


def assert_same_detections(actual, expected):
    assert len(expected.bboxes) > 10
    assert torch.equal(actual["labels"], expected.labels)
    torch.testing.assert_close(actual["boxes"], expected.bboxes, atol=1e-3, rtol=0)
    torch.testing.assert_close(actual["scores"], expected.scores, atol=1e-5, rtol=1e-5)
    widths, heights = (actual["boxes"][:, 2:] - actual["boxes"][:, :2]).unbind(1)
    assert (widths > 0).all() and (heights > 0).all()


@pytest.mark.parametrize("size", SMALL_IMAGES)
def test_gfl_detections_in_a_padded_batch_equal_mmdetection(size):
    shapes, grid = batch_grid()  # mmdetection's GFL points: anchor centres at offset 0, as gfocal's
    assert GFL_CONFIG.point_offset == ATSS_CONFIG.point_offset
    generator = torch.Generator().manual_seed(3)
    cls_logits = torch.randn(1, grid.points.shape[0], NUM_CLASSES, generator=generator) - 1.0
    box_outputs = 2 * torch.randn(1, grid.points.shape[0], 4 * (REG_MAX + 1), generator=generator)
    from mmengine.config import ConfigDict

    head = mmdet_gfl_head()
    head.test_cfg = ConfigDict(TEST_CFG)
    with torch.no_grad():
        (expected,) = head.predict_by_feat(
            to_levels(cls_logits, shapes), to_levels(box_outputs, shapes), batch_img_metas=[_meta(size)], rescale=False
        )
        box_coding = build_box_coding(GFL_CONFIG)
        actual = postprocess_image(GFL_CONFIG, box_coding, cls_logits[0].sigmoid(), None, box_outputs[0], grid, size)
    assert_same_detections(actual, expected)


@pytest.mark.parametrize("size", SMALL_IMAGES)
def test_atss_detections_in_a_padded_batch_equal_mmdetection(size):
    shapes, grid = batch_grid()
    outputs = head_outputs(1, shapes, seed=5)
    with torch.no_grad():
        (expected,) = mmdet_atss_head().predict_by_feat(
            *(to_levels(flat, shapes) for flat in outputs), batch_img_metas=[_meta(size)], rescale=False
        )
        scores, factors = SeparateCenterness(32).scores(outputs.cls_logits, outputs.quality_logits)
        box_coding = build_box_coding(ATSS_CONFIG)
        actual = postprocess_image(ATSS_CONFIG, box_coding, scores[0], factors[0], outputs.box_outputs[0], grid, size)
    assert_same_detections(actual, expected)
