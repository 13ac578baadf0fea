"""mmdetection's own GFL detector, built for side-by-side checks (the parity tests here, ``benchmarks/cpu.py``).

Test scaffolding, not part of the installed package.

Needs mmdetection 3.x importable (it is never a dependency of gfocal; see
``.ci/install_mmdet`` for an install that works with the
pure-Python ``mmcv-lite``, whose missing ``mmcv.ops`` is stood in for here).
"""

from __future__ import annotations

import mmcv_ops_standin
import torch
from torch import nn

__all__ = ["build_mmdet_gfl"]


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
        with torch.no_grad():
            for name, tensor in model.state_dict().items():
                if not tensor.is_floating_point() or name.endswith("integral.project"):
                    continue
                if "running_var" in name or name.endswith(".scale"):
                    tensor.copy_(torch.rand_like(tensor) * 0.5 + 0.75)
                else:
                    tensor.copy_(torch.randn_like(tensor) * (0.1 if tensor.dim() > 1 else 0.3))
    return model.eval()
