"""The one place that maps a :class:`ModelConfig` (the serialised form) to the detector's components.

Every string option of the config is read here and nowhere else: the backbone and the assigner by
name from a plain dict of constructors, the box coding and the quality branch from the variant fields
(``box``, ``classification``, ``quality_label``, ``dgqp``). Adding any of them is one new file plus
one line in its dict below (see docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from gfocal.models.anchor_boxes import AnchorDeltaBoxes
from gfocal.models.assigner import Assigner, ATSSAssigner
from gfocal.models.assigner.fcos import FCOSAssigner
from gfocal.models.assigner.max_iou import MaxIoUAssigner
from gfocal.models.assigner.task_aligned import TaskAlignedAssigner
from gfocal.models.backbone import Backbone, FPNBackbone
from gfocal.models.box_coding import BoxCoding, DiracBoxes, DistributionBoxes
from gfocal.models.config import ModelConfig
from gfocal.models.mobilenet import MobileNetV3Body
from gfocal.models.quality import (
    DistributionGuidedQuality,
    FocalOnly,
    JointQuality,
    JointScoreLoss,
    QualityBranch,
    SeparateCenterness,
    TaskAlignedScore,
    alignment_label,
    centerness_label,
    iou_label,
)
from gfocal.models.resnet import RESNET_LAYOUTS, ResNetBody

__all__ = [
    "BACKBONES",
    "ASSIGNERS",
    "BOX_CODINGS",
    "QUALITY_BRANCHES",
    "build_backbone",
    "build_assigner",
    "build_box_coding",
    "build_quality",
]


def _dirac_boxes(config: ModelConfig) -> DiracBoxes:
    # A Dirac box starts as the ATSS anchor: anchor_scale strides square.
    return DiracBoxes(config.anchor_scale / 2, config.loss_bbox_weight)


def _joint_quality(config: ModelConfig, box_coding: BoxCoding) -> Callable[[int], QualityBranch]:
    """GFL's joint score (QFL), with GFLv2's DGQP when ``config.dgqp``."""
    label = {"iou": iou_label, "centerness": centerness_label, "alignment": alignment_label}[config.quality_label]
    loss = JointScoreLoss(label, config.qfl_beta, config.loss_cls_weight)
    if config.dgqp:
        return lambda channels: DistributionGuidedQuality(box_coding, config.dgqp_topk, config.dgqp_channels, loss)
    return lambda channels: JointQuality(loss)


def _separate_centerness(config: ModelConfig, box_coding: BoxCoding) -> Callable[[int], QualityBranch]:
    """The ATSS and FCOS baselines: Focal Loss on the classes and a centerness branch."""
    return partial(
        SeparateCenterness,
        alpha=config.focal_alpha,
        gamma=config.focal_gamma,
        loss_cls_weight=config.loss_cls_weight,
        loss_centerness_weight=config.loss_centerness_weight,
    )


def _focal_only(config: ModelConfig, box_coding: BoxCoding) -> Callable[[int], QualityBranch]:
    """RetinaNet: Focal Loss on the classes, no quality branch."""
    return lambda channels: FocalOnly(config.focal_alpha, config.focal_gamma, config.loss_cls_weight)


def _task_aligned_score(config: ModelConfig, box_coding: BoxCoding) -> Callable[[int], QualityBranch]:
    """TOOD's loss: QFL towards the assigner's normalised alignment, which also weights the boxes."""
    return lambda channels: TaskAlignedScore(JointScoreLoss(alignment_label, config.qfl_beta, config.loss_cls_weight))


#: Backbone constructors by ``ModelConfig.backbone``: a body (``gfocal.models.backbone.Body``) under an FPN, or any
#: other ``Backbone``.
BACKBONES: dict[str, Callable[[ModelConfig], Backbone]] = {
    **{name: partial(FPNBackbone, ResNetBody) for name in RESNET_LAYOUTS},
    "mobilenet_v3_large": partial(FPNBackbone, MobileNetV3Body),
}

#: Assigner constructors by ``ModelConfig.assigner``.
ASSIGNERS: dict[str, Callable[[ModelConfig], Assigner]] = {
    "atss": lambda config: ATSSAssigner(config.atss_topk, config.anchor_scale),
    "task_aligned": lambda config: TaskAlignedAssigner(config.tal_topk, config.tal_alpha, config.tal_beta),
    "fcos": lambda config: FCOSAssigner(tuple(config.fcos_range_edges), config.fcos_radius),
    "max_iou": lambda config: MaxIoUAssigner(
        config.max_iou_pos, config.max_iou_neg, config.max_iou_min_pos, config.anchor_scale
    ),
}

#: Box codings by ``ModelConfig.box``.
BOX_CODINGS: dict[str, Callable[[ModelConfig], BoxCoding]] = {
    "dfl": lambda config: DistributionBoxes(config.reg_max, config.loss_bbox_weight, config.loss_dfl_weight),
    "dirac": _dirac_boxes,
    # The paper's ATSS baseline: deltas against the square anchor ATSS assigns with.
    "anchor_delta": lambda config: AnchorDeltaBoxes(
        config.anchor_scale, config.loss_bbox_weight, config.delta_stds, config.delta_loss
    ),
}

#: Quality branches by ``ModelConfig.classification``: given the config and the box coding, the branch's
#: constructor, which the head calls with its regression tower's output channels.
QUALITY_BRANCHES: dict[str, Callable[[ModelConfig, BoxCoding], Callable[[int], QualityBranch]]] = {
    "qfl": _joint_quality,
    "focal": _separate_centerness,
    "focal_only": _focal_only,
    "task_aligned": _task_aligned_score,
}


def _lookup(table: dict[str, Callable], kind: str, name: str) -> Callable:
    if name not in table:
        raise ValueError(f"unknown {kind} {name!r}; known: {', '.join(sorted(table))}")
    return table[name]


def build_backbone(config: ModelConfig) -> Backbone:
    return _lookup(BACKBONES, "backbone", config.backbone)(config)


def build_assigner(config: ModelConfig) -> Assigner:
    assigner = _lookup(ASSIGNERS, "assigner", config.assigner)(config)
    if getattr(assigner, "gives_soft_targets", False):
        return assigner
    for name, value in (("quality_label", "alignment"), ("classification", "task_aligned")):
        if getattr(config, name) == value:
            raise ValueError(
                f"{name}={value!r} trains towards the assigner's soft targets; assigner={config.assigner!r} "
                "gives none (use assigner='task_aligned')"
            )
    return assigner


def build_box_coding(config: ModelConfig) -> BoxCoding:
    return _lookup(BOX_CODINGS, "box coding (box)", config.box)(config)


def build_quality(config: ModelConfig, box_coding: BoxCoding) -> Callable[[int], QualityBranch]:
    """The quality branch's constructor, given the regression tower's output channels (the head calls it)."""
    return _lookup(QUALITY_BRANCHES, "quality branch (classification)", config.classification)(config, box_coding)
