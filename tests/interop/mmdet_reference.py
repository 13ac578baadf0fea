"""mmdetection's own GFL detector, built for side-by-side checks (the parity tests here, ``benchmarks/cpu.py``).

Test scaffolding, not part of the installed package.

Needs mmdetection 3.x importable (it is never a dependency of gfocal; see
``.ci/install_mmdet`` for an install that works with the
pure-Python ``mmcv-lite``, whose missing ``mmcv.ops`` is stood in for here).
"""

from __future__ import annotations

import os

import mmcv_ops_standin
import torch
from torch import nn

from gfocal.models.postprocess import postprocess_image

__all__ = ["build_mmdet_gfl", "build_mmdet_zoo_gfl", "mmdet_detections", "assert_same_detections"]


def build_mmdet_gfl(
    num_classes: int = 80,
    depth: int = 50,
    channels: int = 256,
    stacked_convs: int = 4,
    reg_max: int = 16,
    random_weights: bool = False,
) -> nn.Module:
    """The model section of mmdetection's ``gfl_r50_fpn_1x_coco`` config, with these sizes.

    ``random_weights`` fills every tensor (BN statistics and Scales included) with
    non-trivial random values, so a comparison exercises every weight.
    """
    mmcv_ops_standin.install()
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import ConfigDict

    register_all_modules()
    stage_channels = [64, 128, 256, 512] if depth < 50 else [256, 512, 1024, 2048]
    config = dict(
        type="GFL",
        data_preprocessor=dict(
            type="DetDataPreprocessor",
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            bgr_to_rgb=True,
            pad_size_divisor=32,
        ),
        backbone=dict(
            type="ResNet",
            depth=depth,
            num_stages=4,
            out_indices=(0, 1, 2, 3),
            frozen_stages=1,
            norm_cfg=dict(type="BN", requires_grad=True),
            norm_eval=True,
            style="pytorch",
        ),
        neck=dict(
            type="FPN",
            in_channels=stage_channels,
            out_channels=channels,
            start_level=1,
            add_extra_convs="on_output",
            num_outs=5,
        ),
        bbox_head=dict(
            type="GFLHead",
            num_classes=num_classes,
            in_channels=channels,
            stacked_convs=stacked_convs,
            feat_channels=channels,
            reg_max=reg_max,
            anchor_generator=dict(
                type="AnchorGenerator",
                ratios=[1.0],
                octave_base_scale=8,
                scales_per_octave=1,
                strides=[8, 16, 32, 64, 128],
            ),
            loss_cls=dict(type="QualityFocalLoss", use_sigmoid=True, beta=2.0, loss_weight=1.0),
            loss_dfl=dict(type="DistributionFocalLoss", loss_weight=0.25),
            loss_bbox=dict(type="GIoULoss", loss_weight=2.0),
        ),
        train_cfg=dict(assigner=dict(type="ATSSAssigner", topk=9), allowed_border=-1, pos_weight=-1, debug=False),
        test_cfg=dict(
            nms_pre=1000, min_bbox_size=0, score_thr=0.05, nms=dict(type="nms", iou_threshold=0.6), max_per_img=100
        ),
    )
    torch.manual_seed(0)
    model = MODELS.build(ConfigDict(config))
    if random_weights:
        _randomise(model)
    return model.eval()


def build_mmdet_zoo_gfl(
    config_name: str,
    num_classes: int = 80,
    channels: int = 256,
    stacked_convs: int = 4,
    random_weights: bool = False,
    **backbone: object,
) -> nn.Module:
    """The model of one of mmdetection's own GFL zoo configs (``configs/gfl/<config_name>.py``, or
    ``configs/ld/`` for a name starting ``ld_``, as installed), with these head sizes, ``backbone`` fields
    replaced, and no pretrained body loaded.

    An LD config builds its student (``KnowledgeDistillationSingleStageDetector``, whose ``state_dict`` is the
    student's alone: mmdetection keeps the teacher out of it) with its teacher's config but not its checkpoint.
    The deformable convs of the ``dconv`` configs are compiled mmcv ops that ``mmcv-lite`` lacks; mmcv's
    ``DeformConv2dPack`` and ``ModulatedDeformConv2dPack`` stand in for them (``mmcv_ops_standin``).
    """
    mmcv_ops_standin.install()
    import mmdet
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config

    register_all_modules()
    configs = os.path.join(os.path.dirname(mmdet.__file__), ".mim")
    folder = "ld" if config_name.startswith("ld_") else "gfl"
    model = Config.fromfile(os.path.join(configs, "configs", folder, f"{config_name}.py")).model
    if "teacher_config" in model:  # a path relative to mmdetection's root; the checkpoint would be downloaded
        model.update(teacher_config=os.path.join(configs, model.teacher_config), teacher_ckpt=None)
    model.backbone.update(init_cfg=None, **backbone)
    model.neck.out_channels = channels
    model.bbox_head.update(
        num_classes=num_classes, in_channels=channels, feat_channels=channels, stacked_convs=stacked_convs
    )
    torch.manual_seed(0)
    built = MODELS.build(model)
    if random_weights:
        _randomise(built)
    built.eval()  # not returned: the LD detector's train() override returns None
    return built


def _randomise(model: nn.Module) -> None:
    """Fill every tensor (BN statistics and Scales included) with non-trivial random values, so that a
    comparison exercises every weight; deformable offsets of about a pixel."""
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point() or name.endswith("integral.project"):
                continue
            if "running_var" in name or name.endswith(".scale"):
                tensor.copy_(torch.rand_like(tensor) * 0.5 + 0.75)
            elif "conv_offset" in name:
                tensor.copy_(torch.randn_like(tensor) * (0.01 if tensor.dim() > 1 else 0.5))
            else:
                tensor.copy_(torch.randn_like(tensor) * (0.1 if tensor.dim() > 1 else 0.3))


def mmdet_detections(model: nn.Module, batch: torch.Tensor, image_size: tuple[int, int]):
    """mmdetection's detections (boxes, scores, labels) of one normalised, padded image ``batch`` [1, 3, H, W],
    whose content is ``image_size`` (boxes are clipped to it)."""
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


def assert_same_detections(
    reference: nn.Module,
    ours: nn.Module,
    batch: torch.Tensor,
    image_size: tuple[int, int],
    atol: float = 1e-5,
    box_atol: float = 1e-3,
) -> int:
    """mmdetection's per-location outputs (every level, P7 included) equal gfocal's within ``atol``; then the
    detections: labels exactly, boxes within ``box_atol`` pixels. Returns the number of detections."""
    expected_boxes, expected_scores, expected_labels = mmdet_detections(reference, batch, image_size)
    with torch.no_grad():
        scored = ours.scored_outputs(batch)
        cls_levels, box_levels = reference.bbox_head(reference.extract_feat(batch))
    flatten = lambda levels: torch.cat([level.flatten(2).transpose(1, 2) for level in levels], 1)  # noqa: E731
    torch.testing.assert_close(scored.scores, flatten(cls_levels).sigmoid(), atol=atol, rtol=1e-4)
    torch.testing.assert_close(scored.box_outputs, flatten(box_levels), atol=10 * atol, rtol=1e-4)
    actual = postprocess_image(
        ours.config, ours.head.box_coding, scored.scores[0], None, scored.box_outputs[0], scored.grid, image_size
    )
    assert torch.equal(actual["labels"], expected_labels)
    torch.testing.assert_close(actual["boxes"], expected_boxes, atol=box_atol, rtol=0)
    torch.testing.assert_close(actual["scores"], expected_scores, atol=atol, rtol=1e-5)
    return len(expected_boxes)
