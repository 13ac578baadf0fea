"""Our detections equal mmdetection's for an imported GFL checkpoint (runs only where mmdet is installed).

mmdetection is not a dependency. To run this test, install it outside the project's environment, e.g.::

    pip install --target /opt/mmdet-site "setuptools<70"          # build tools for mmcv-lite
    PYTHONPATH=/opt/mmdet-site MMCV_WITH_OPS=0 pip install --no-build-isolation --no-deps \\
        --target /opt/mmdet-site mmcv-lite==2.1.0 mmengine mmdet==3.3.0
    pip install --target /opt/mmdet-site opencv-python-headless addict termcolor yapf rich six \\
        terminaltables shapely scipy   # mmdet's import-time dependencies (not numpy: keep the venv's)
    PYTHONPATH=/opt/mmdet-site pytest tests/interop/test_mmdet_parity.py

``mmcv-lite`` has no compiled ``mmcv.ops``; :mod:`mmcv_ops_standin` provides the ``nms`` and
``batched_nms`` GFL inference calls, on top of torchvision.
"""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

if importlib.util.find_spec("mmdet") is None:
    pytest.skip("mmdetection is not installed (optional; see this module's docstring to run it)", allow_module_level=True)

sys.path.insert(0, str(Path(__file__).parent))
import mmcv_ops_standin  # noqa: E402

mmcv_ops_standin.install()

from gfocal.interop import from_mmdet  # noqa: E402
from gfocal.models.postprocess import postprocess_image  # noqa: E402

NUM_CLASSES = 3


def mmdet_gfl(depth=18, channels=64, stacked_convs=2, reg_max=16):
    """mmdetection's gfl_r50_fpn_1x_coco model section, made small."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import ConfigDict

    register_all_modules()
    stage_channels = [64, 128, 256, 512] if depth < 50 else [256, 512, 1024, 2048]
    config = dict(
        type="GFL",
        data_preprocessor=dict(type="DetDataPreprocessor", mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=32),
        backbone=dict(type="ResNet", depth=depth, num_stages=4, out_indices=(0, 1, 2, 3), frozen_stages=1, norm_cfg=dict(type="BN", requires_grad=True), norm_eval=True, style="pytorch"),
        neck=dict(type="FPN", in_channels=stage_channels, out_channels=channels, start_level=1, add_extra_convs="on_output", num_outs=5),
        bbox_head=dict(
            type="GFLHead", num_classes=NUM_CLASSES, in_channels=channels, stacked_convs=stacked_convs, feat_channels=channels, reg_max=reg_max,
            anchor_generator=dict(type="AnchorGenerator", ratios=[1.0], octave_base_scale=8, scales_per_octave=1, strides=[8, 16, 32, 64, 128]),
            loss_cls=dict(type="QualityFocalLoss", use_sigmoid=True, beta=2.0, loss_weight=1.0),
            loss_dfl=dict(type="DistributionFocalLoss", loss_weight=0.25),
            loss_bbox=dict(type="GIoULoss", loss_weight=2.0),
        ),
        train_cfg=dict(assigner=dict(type="ATSSAssigner", topk=9), allowed_border=-1, pos_weight=-1, debug=False),
        test_cfg=dict(nms_pre=1000, min_bbox_size=0, score_thr=0.05, nms=dict(type="nms", iou_threshold=0.6), max_per_img=100),
    )
    torch.manual_seed(0)
    model = MODELS.build(ConfigDict(config))
    with torch.no_grad():  # random, non-trivial weights everywhere (BN statistics and Scales included)
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point() or name.endswith("integral.project"):
                continue
            if "running_var" in name or name.endswith(".scale"):
                tensor.copy_(torch.rand_like(tensor) * 0.5 + 0.75)
            else:
                tensor.copy_(torch.randn_like(tensor) * (0.1 if tensor.dim() > 1 else 0.3))
    return model.eval()


def mmdet_detections(model, batch, image_size):
    from mmdet.structures import DetDataSample

    height, width = image_size
    sample = DetDataSample(metainfo=dict(img_shape=(height, width), ori_shape=(height, width), pad_shape=tuple(batch.shape[-2:]), scale_factor=(1.0, 1.0)))
    with torch.no_grad():
        result = model.predict(batch, [sample], rescale=False)[0].pred_instances
    return result.bboxes, result.scores, result.labels


@pytest.mark.parametrize("depth, stacked_convs, reg_max", [(18, 2, 16), (50, 1, 8)])
def test_detections_equal_mmdetection(depth, stacked_convs, reg_max):
    reference = mmdet_gfl(depth, 64, stacked_convs, reg_max)
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
    actual = postprocess_image(ours.config, scored.scores[0], None, scored.box_outputs[0], scored.grid, image_size)
    assert len(expected_boxes) > 10
    assert torch.equal(actual["labels"], expected_labels)
    torch.testing.assert_close(actual["boxes"], expected_boxes, atol=1e-3, rtol=0)
    torch.testing.assert_close(actual["scores"], expected_scores, atol=1e-5, rtol=1e-5)
