"""The detector's configuration: one frozen dataclass, plain data, strict on unknown keys.

Variants of the method are a few fields (``classification``, ``box``, ``quality_label``, ``dgqp``),
so an ablation changes one thing at a time; :data:`gfocal.models.variants.VARIANTS` names them
and says what each value means.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from gfocal.strict import check_field_names

__all__ = ["ModelConfig", "image_size_options"]

#: Fields that files written by earlier versions hold, read and ignored: ``extra`` (always empty, never read).
RETIRED_FIELDS = ("extra",)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to build a detector; saved inside every weights file.

    ``num_classes`` excludes background: labels are 0..num_classes-1.
    Image mean/std are in [0, 1] units of RGB images.
    """

    num_classes: int
    class_names: tuple[str, ...] | None = None
    # Backbone and neck.
    # A key of gfocal.models.components.BACKBONES: resnet18, resnet34, resnet50, resnet101, resnet152,
    # resnext50_32x4d, resnext101_32x4d, resnext101_32x8d, resnext101_64x4d, mobilenet_v3_large.
    backbone: str = "resnet50"
    # Channels of the ResNet's stem and first stage: 64 is torchvision's network (ImageNet weights
    # fit); other widths scale every stage (see gfocal.models.resnet.ScaledResNet). A ResNet option, as
    # deform_stages and deform_modulated: another body refuses them (gfocal.models.backbone.BODY_OPTIONS).
    backbone_width: int = 64
    backbone_norm: Literal["bn", "frozen_bn"] = "bn"
    # Stages (1-4: C2-C5, torchvision's layer1-layer4) whose bottleneck 3x3 convs are deformable, as
    # mmdetection's stage_with_dcn; its GFL zoo: (2, 3, 4) for R-101, (3, 4) for X-101-32x4d.
    deform_stages: tuple[int, ...] = ()
    # False: DCN v1, offsets only (mmdetection's type='DCN', which its GFL zoo uses); True: DCN v2,
    # offsets and a sigmoid mask (type='DCNv2'). See gfocal.models.deform_conv.
    deform_modulated: bool = False
    # The body's last stages that train (a ResNet's and MobileNetV3's: 5 = stem and 4 stages, all); "frozen_bn"
    # above freezes its BatchNorm statistics. Both are the body's (gfocal.models.backbone.Body.freeze).
    trainable_backbone_layers: int = 5
    fpn_channels: int = 256
    strides: tuple[int, ...] = (8, 16, 32, 64, 128)
    # False (the reference GFL's FPN): P7 = conv(P6); True: P7 = conv(relu(P6)), torchvision's LastLevelP6P7.
    relu_before_extra_convs: bool = False
    # Head.
    stacked_convs: int = 4
    feat_channels: int = 256
    norm_groups: int = 32
    reg_max: int = 16
    classification: str = "qfl"  # "qfl" | "focal" | "focal_only" | "task_aligned" (see gfocal.models.variants)
    box: str = "dfl"  # "dfl" | "dirac" | "anchor_delta"
    # box="anchor_delta" only: the loss ("giou" on the decoded box, ATSS's; "l1" or "smooth_l1" on the deltas,
    # RetinaNet's) and the deltas' normalisation (dx, dy, dw, dh): ATSS's (0.1, 0.1, 0.2, 0.2), RetinaNet's 1s.
    delta_loss: Literal["giou", "l1", "smooth_l1"] = "giou"
    delta_stds: tuple[float, float, float, float] = (0.1, 0.1, 0.2, 0.2)
    # The QFL target of a positive: its predicted box's IoU (GFL), its point's centerness, or the
    # assigner's soft target ("alignment": TOOD's normalised t, needs assigner="task_aligned").
    quality_label: Literal["iou", "centerness", "alignment"] = "iou"
    dgqp: bool = False
    dgqp_topk: int = 4
    dgqp_channels: int = 64
    prior_prob: float = 0.01
    # Assignment: a key of gfocal.models.components.ASSIGNERS ("atss", "task_aligned", "fcos", "max_iou"),
    # and its settings. anchor_scale is also the side, in strides, of max_iou's one anchor per location.
    assigner: str = "atss"
    atss_topk: int = 9
    anchor_scale: float = 8.0
    # TOOD's task-aligned assigner: top-k per ground truth by t = score**alpha * IoU**beta.
    tal_topk: int = 13
    tal_alpha: float = 1.0
    tal_beta: float = 6.0
    # FCOS: centre sampling radius in strides; edges between the levels' ranges of the largest edge distance
    # (pixels, one less than the strides: the default is (-1, 64), (64, 128), ..., (512, inf)).
    fcos_radius: float = 1.5
    fcos_range_edges: tuple[float, ...] = (64.0, 128.0, 256.0, 512.0)
    # RetinaNet's max-IoU: positive at IoU >= max_iou_pos, negative below max_iou_neg, ignored between;
    # each box keeps its best anchors when their IoU is >= max_iou_min_pos.
    max_iou_pos: float = 0.5
    max_iou_neg: float = 0.4
    max_iou_min_pos: float = 0.0
    point_offset: float = 0.0
    # Losses.
    qfl_beta: float = 2.0
    loss_cls_weight: float = 1.0
    loss_bbox_weight: float = 2.0
    loss_dfl_weight: float = 0.25
    loss_centerness_weight: float = 1.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    # Input transform.
    min_size: int = 800
    max_size: int = 1333
    size_divisible: int = 32
    image_mean: tuple[float, float, float] = IMAGENET_MEAN
    image_std: tuple[float, float, float] = IMAGENET_STD
    # Inference.
    score_threshold: float = 0.05
    pre_nms_top_k: int = 1000
    nms_iou_threshold: float = 0.6
    max_detections: int = 100
    # Box voting after NMS (gfocal.models.box_voting): "off", "score" (score x IoU kernel) or "distribution"
    # (also / each edge's learned variance); sigma is the IoU kernel's width.
    box_voting: str = "off"
    box_voting_sigma: float = 0.025
    # Temperature on the reported edge std (edge_std = std_scale x the distribution's std), fitted on a
    # validation set by `gfocal analyze calibration --save-calibrated`; 1 leaves the learned spread as it is.
    std_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1 (background excluded), got {self.num_classes}")
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            raise ValueError(f"{len(self.class_names)} class_names given for num_classes={self.num_classes}")
        if self.reg_max < 1 and self.box == "dfl":
            raise ValueError(f"reg_max must be >= 1 for box='dfl' (reg_max + 1 bins per edge), got {self.reg_max}")
        if self.dgqp and (self.classification != "qfl" or self.box != "dfl"):
            raise ValueError("dgqp needs classification='qfl' and box='dfl' (it reads the edge distributions)")
        if self.dgqp and self.dgqp_topk > self.reg_max + 1:
            raise ValueError(f"dgqp_topk={self.dgqp_topk} exceeds the {self.reg_max + 1} bins per edge")
        # backbone, assigner, box and classification name components: build_detector checks them.
        for name, allowed in (
            ("quality_label", ("iou", "centerness", "alignment")),
            ("backbone_norm", ("bn", "frozen_bn")),
            ("box_voting", ("off", "score", "distribution")),
            ("delta_loss", ("giou", "l1", "smooth_l1")),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.tal_topk < 1:
            raise ValueError(f"tal_topk must be >= 1 candidate per ground truth, got {self.tal_topk}")
        if self.tal_alpha < 0 or self.tal_beta < 0:
            raise ValueError(f"tal_alpha and tal_beta must be >= 0, got {self.tal_alpha}, {self.tal_beta}")
        if not self.box_voting_sigma > 0:
            raise ValueError(f"box_voting_sigma must be > 0, got {self.box_voting_sigma}")
        if self.assigner == "fcos" and len(self.fcos_range_edges) != len(self.strides) - 1:
            raise ValueError(
                f"fcos_range_edges {self.fcos_range_edges} has {len(self.fcos_range_edges)} edges for "
                f"{len(self.strides)} strides; FCOS's level ranges need one edge fewer than levels"
            )
        if not self.std_scale > 0:
            raise ValueError(f"std_scale must be > 0, got {self.std_scale}")
        # A YAML or JSON list (model_overrides) compares and serialises as the tuple it names.
        object.__setattr__(self, "deform_stages", tuple(self.deform_stages))
        object.__setattr__(self, "delta_stds", tuple(self.delta_stds))
        if len(self.delta_stds) != 4 or min(self.delta_stds) <= 0:
            raise ValueError(f"delta_stds must be 4 positive numbers (dx, dy, dw, dh), got {self.delta_stds}")
        if any(stage not in (1, 2, 3, 4) for stage in self.deform_stages) or len(set(self.deform_stages)) != len(
            self.deform_stages
        ):
            raise ValueError(f"deform_stages must be distinct ResNet stages in 1..4, got {self.deform_stages}")
        if self.backbone_width < 1:
            raise ValueError(f"backbone_width must be >= 1 channel, got {self.backbone_width}")
        for name in ("feat_channels", "fpn_channels"):
            if getattr(self, name) % self.norm_groups:
                raise ValueError(f"{name}={getattr(self, name)} is not divisible by norm_groups={self.norm_groups}")

    @property
    def bins(self) -> int:
        """Outputs per edge: reg_max + 1 bins for a distribution, 1 for a Dirac box."""
        return self.reg_max + 1 if self.box == "dfl" else 1

    def replace(self, **overrides: Any) -> ModelConfig:
        """A copy with some fields changed; unknown names are an error."""
        check_field_names(ModelConfig, overrides, "model option")
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        """The config of a weights file or ONNX metadata; fields that older files hold and that no longer
        mean anything (:data:`RETIRED_FIELDS`) are dropped."""
        values = {k: v for k, v in values.items() if k not in RETIRED_FIELDS}
        check_field_names(ModelConfig, values, "model option")
        tuple_fields = {
            "class_names",
            "strides",
            "image_mean",
            "image_std",
            "deform_stages",
            "fcos_range_edges",
            "delta_stds",
        }
        converted = {k: tuple(v) if k in tuple_fields and v is not None else v for k, v in values.items()}
        return cls(**converted)


def image_size_options(min_size: int, max_size: int, image_size: int) -> dict[str, int]:
    """``min_size``/``max_size`` for a network input whose longer side is ``image_size``, keeping their ratio
    (320/320 stays square; the paper's 800/1333 at 1000 becomes 600/1000)."""
    if image_size < 1:
        raise ValueError(f"image_size must be >= 1 pixel, got {image_size}")
    return {"min_size": max(1, round(image_size * min_size / max_size)), "max_size": image_size}


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
