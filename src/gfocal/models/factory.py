"""Named configurations as plain factory functions, and loading a model from a weights file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from gfocal.models.config import ModelConfig, image_size_options
from gfocal.models.detector import GFLDetector
from gfocal.models.weights import load_state_into, read_config
from gfocal.weights_file import WeightsError, read_tensors

__all__ = [
    "build_detector",
    "load_model",
    "gfl_resnet50_fpn",
    "gfl_resnet101_fpn",
    "gfl_resnet101_dcn_fpn",
    "gfl_resnext101_32x4d_fpn",
    "gfl_resnext101_32x4d_dcn_fpn",
    "gfl_resnet18_fpn",
    "gfl_mobilenetv3_fpn",
    "gfl_small",
    "gfl_nano",
    "MODELS",
]


def build_detector(
    config: ModelConfig, weights: str | Path | None = None, backbone_weights: str | Path | None = None
) -> GFLDetector:
    """Build a detector; optionally load full weights (any weights file holding gfocal's tensor names), or only
    the backbone's ImageNet weights: a local file or a torchvision weights name (``DEFAULT``, ``IMAGENET1K_V1``),
    which the backbone resolves and checks (``gfocal.models.backbone.Body.load_imagenet``)."""
    model = GFLDetector.from_config(config)
    if weights is not None:
        load_state_into(model, read_tensors(weights), weights)
    elif backbone_weights is not None:
        if not hasattr(model.backbone, "load_imagenet"):
            raise WeightsError(
                f"backbone weights {backbone_weights}: backbone {config.backbone!r} ({type(model.backbone).__name__}) "
                "has no ImageNet weights (no load_imagenet): make it a Body under FPNBackbone (gfocal.models.backbone) "
                "or load its weights yourself"
            )
        model.backbone.load_imagenet(backbone_weights)
    return model


def load_model(path: str | Path, image_size: int | None = None, **overrides: Any) -> GFLDetector:
    """Rebuild a detector from a gfocal weights file alone.

    ``image_size`` sets the longer side of the network input (the stored ratio of the sizes kept);
    ``overrides`` change other inference options (e.g. score_threshold).
    """
    config = read_config(path)
    if image_size is not None:
        overrides = {**image_size_options(config.min_size, config.max_size, image_size), **overrides}
    return build_detector(config.replace(**overrides) if overrides else config, weights=path)


def _named(defaults: dict[str, Any]) -> Callable[..., GFLDetector]:
    def factory(
        num_classes: int,
        weights: str | Path | None = None,
        backbone_weights: str | Path | None = None,
        **overrides: Any,
    ) -> GFLDetector:
        options = {**defaults, **overrides}
        # A pretrained body keeps its BatchNorm statistics and stem frozen, as the reference does;
        # from scratch everything trains.
        if backbone_weights is not None:
            options.setdefault("backbone_norm", "frozen_bn")
            options.setdefault("trainable_backbone_layers", 3)
        return build_detector(ModelConfig(num_classes=num_classes, **options), weights, backbone_weights)

    factory.defaults = dict(defaults)  # type: ignore[attr-defined]  # for sizing before building
    return factory


gfl_resnet50_fpn = _named({"backbone": "resnet50"})
gfl_resnet50_fpn.__doc__ = (
    """The paper's GFL: ResNet-50 FPN P3-P7, 256 channels, 4-conv towers, reg_max 16, 1333x800."""
)
gfl_resnet101_fpn = _named({"backbone": "resnet101"})
gfl_resnet101_fpn.__doc__ = """The paper's GFL R-101 (mmdetection's gfl_r101_fpn_ms-2x_coco): ResNet-101, otherwise as
gfl_resnet50_fpn."""
gfl_resnet101_dcn_fpn = _named({"backbone": "resnet101", "deform_stages": (2, 3, 4)})
gfl_resnet101_dcn_fpn.__doc__ = """The paper's GFL R-101-DCN (mmdetection's gfl_r101-dconv-c3-c5_fpn_ms-2x_coco): ResNet-101
with deformable 3x3 convs (DCN v1, as that config's type='DCN') in C3-C5; deform_modulated=True gives DCN v2."""
gfl_resnext101_32x4d_fpn = _named({"backbone": "resnext101_32x4d"})
gfl_resnext101_32x4d_fpn.__doc__ = """The paper's GFL X-101-32x4d (mmdetection's gfl_x101-32x4d_fpn_ms-2x_coco). torchvision
has no ResNeXt-101 32x4d ImageNet weights: pass mmdetection's open-mmlab://resnext101_32x4d file as backbone_weights."""
gfl_resnext101_32x4d_dcn_fpn = _named({"backbone": "resnext101_32x4d", "deform_stages": (3, 4)})
gfl_resnext101_32x4d_dcn_fpn.__doc__ = """The paper's best GFL, X-101-32x4d-DCN (mmdetection's
gfl_x101-32x4d-dconv-c4-c5_fpn_ms-2x_coco): deformable 3x3 convs (DCN v1) in C4-C5, as that config's
stage_with_dcn=(False, False, True, True); deform_modulated=True gives DCN v2."""
gfl_resnet18_fpn = _named({"backbone": "resnet18"})
gfl_resnet18_fpn.__doc__ = """GFL with a ResNet-18 body, otherwise the paper's settings."""
gfl_mobilenetv3_fpn = _named({"backbone": "mobilenet_v3_large"})
gfl_mobilenetv3_fpn.__doc__ = """GFL on torchvision's MobileNetV3-Large (C3-C5 of 40, 112 and 960 channels, see
gfocal.models.mobilenet), otherwise the paper's settings; its ImageNet weights by name: backbone_weights=
"IMAGENET1K_V1" or "IMAGENET1K_V2" (= "DEFAULT"), torchvision's MobileNet_V3_Large_Weights."""
gfl_small = _named(
    {
        "backbone": "resnet18",
        "fpn_channels": 96,
        "feat_channels": 96,
        "stacked_convs": 2,
        "min_size": 320,
        "max_size": 320,
    }
)
gfl_small.__doc__ = """A CPU-friendly GFL: ResNet-18, 96-channel FPN and head, 2-conv towers, images up to 320 px."""

gfl_nano = _named(
    {
        "backbone": "resnet18",
        "backbone_width": 32,
        "fpn_channels": 64,
        "feat_channels": 64,
        "stacked_convs": 2,
        "min_size": 416,
        "max_size": 416,
    }
)
gfl_nano.__doc__ = """GFL sized to train from scratch on a CPU: ResNet-18 at half width, 64-channel FPN and head,
2-conv towers, images up to 416 px: 3.2 M parameters and 2.5 G multiply-adds per image, about half of
gfl_small's at 320 px. The default model on a CPU (``TrainConfig.model="auto"``)."""

MODELS: dict[str, Callable[..., GFLDetector]] = {
    "gfl_nano": gfl_nano,
    "gfl_small": gfl_small,
    "gfl_resnet18_fpn": gfl_resnet18_fpn,
    "gfl_mobilenetv3_fpn": gfl_mobilenetv3_fpn,
    "gfl_resnet50_fpn": gfl_resnet50_fpn,
    "gfl_resnet101_fpn": gfl_resnet101_fpn,
    "gfl_resnet101_dcn_fpn": gfl_resnet101_dcn_fpn,
    "gfl_resnext101_32x4d_fpn": gfl_resnext101_32x4d_fpn,
    "gfl_resnext101_32x4d_dcn_fpn": gfl_resnext101_32x4d_dcn_fpn,
}
