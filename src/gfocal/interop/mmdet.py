"""Import mmdetection ``GFL`` checkpoints: infer the architecture from the state dict, map the keys.

mmdetection's GFL is ResNet or ResNeXt (``style="pytorch"``; its zoo: R-50, R-101, X-101-32x4d, with
deformable 3x3 convs in some stages for R-101-DCN and X-101-32x4d-DCN) + FPN (``start_level=1``,
``add_extra_convs="on_output"``, no ReLU before the extra convs) + ``GFLHead``
(two towers of ``stacked_convs`` x [3x3 conv, GroupNorm, ReLU], ``gfl_cls``,
``gfl_reg``, one ``Scale`` per level). Key mapping, mmdetection -> gfocal:

=========================================  =============================================
``backbone.<resnet key>``                  ``backbone.body.<resnet key>`` (same names, the
                                           deformable convs' ``conv2.conv_offset.*`` included)
``neck.lateral_convs.i.conv.*``            ``backbone.fpn.inner_blocks.i.0.*``
``neck.fpn_convs.i.conv.*`` (i < 3)        ``backbone.fpn.layer_blocks.i.0.*``
``neck.fpn_convs.3.conv.*`` / ``4``        ``backbone.fpn.extra_blocks.p6.*`` / ``p7``
``bbox_head.cls_convs.i.conv.weight``      ``head.cls_tower.{3i}.weight``
``bbox_head.cls_convs.i.gn.*``             ``head.cls_tower.{3i+1}.*`` (reg likewise)
``bbox_head.gfl_cls.*`` / ``gfl_reg.*``    ``head.cls_out.*`` / ``head.box_out.*``
``bbox_head.scales.i.scale``               ``head.scales.i.scale``
=========================================  =============================================

``bbox_head.integral.project`` (the bins 0..reg_max) and BatchNorm ``num_batches_tracked``
counters carry no weights and are checked or dropped. The body is read from the shapes: groups of the
3x3 convs (``layer1.0.conv2.weight`` [groups * width_per_group, width_per_group, 3, 3]) give a ResNeXt,
``conv_offset`` tensors give the deformable stages, and their 18 or 27 channels DCN v1 or v2 (mmcv's
``DeformConv2dPack`` or ``ModulatedDeformConv2dPack``, one deform group).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gfocal.models import GFLDetector, ModelConfig, WeightsError
from gfocal.models.resnet import RESNET_LAYOUTS
from gfocal.weights_file import read_tensors

__all__ = [
    "MMDET_PREPROCESSING",
    "from_mmdet",
    "gfocal_key_to_mmdet",
    "mmdet_config_from_state",
    "mmdet_key_to_gfocal",
    "mmdet_to_gfocal_state",
]

# mmdetection's GFL data_preprocessor (0-255 RGB units after bgr_to_rgb) in our [0, 1] units,
# its 1333x800 keep-ratio test resize, and its test_cfg.
MMDET_PREPROCESSING: dict[str, Any] = {
    "image_mean": tuple(v / 255 for v in (123.675, 116.28, 103.53)),
    "image_std": tuple(v / 255 for v in (58.395, 57.12, 57.375)),
    "min_size": 800,
    "max_size": 1333,
    "size_divisible": 32,
    "score_threshold": 0.05,
    "pre_nms_top_k": 1000,
    "nms_iou_threshold": 0.6,
    "max_detections": 100,
    "point_offset": 0.0,
    "relu_before_extra_convs": False,
}

_DEPTHS = {
    (2, 2, 2, 2, False): 18,
    (3, 4, 6, 3, False): 34,
    (3, 4, 6, 3, True): 50,
    (3, 4, 23, 3, True): 101,
    (3, 8, 36, 3, True): 152,
}
_STAGES = ("layer1", "layer2", "layer3", "layer4")


def from_mmdet(checkpoint: str | Path | Mapping[str, Tensor], **overrides: Any) -> GFLDetector:
    """Build a gfocal detector holding the weights of an mmdetection ``GFL`` checkpoint.

    Args:
        checkpoint: a ``.pth`` file (read by :func:`gfocal.weights_file.read_tensors`, ``weights_only=True``;
            a ``state_dict`` entry is used when present) or a state dict with mmdetection's key names.
        overrides: ModelConfig fields replacing the inferred ones, e.g. ``class_names``,
            ``score_threshold``, or ``norm_groups`` when the head's GroupNorm did not use 32 groups
            (group count is not visible in the weights).

    Returns:
        A GFLDetector in eval mode, with mmdetection's preprocessing (mean/std, 1333x800 resize)
        and test settings. Images go in as RGB, like every gfocal model.

    Raises:
        WeightsError: the file is missing or unreadable (one line: e.g. it pickles code that
            ``weights_only=True`` refuses), the state dict is not an mmdetection GFL detector, or some keys are left
            unmatched or have other shapes than the inferred model; one message lists them all.
    """
    source = str(checkpoint) if isinstance(checkpoint, (str, Path)) else "mmdetection state dict"
    state = read_tensors(checkpoint) if isinstance(checkpoint, (str, Path)) else dict(checkpoint)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    config = mmdet_config_from_state(state, source)
    if overrides:
        config = config.replace(**overrides)
    model = GFLDetector.from_config(config)
    mapped = mmdet_to_gfocal_state(state, config.reg_max, source)
    _load_exactly(model, mapped, {mmdet_key_to_gfocal(k): k for k in state}, source)
    return model.eval()


def mmdet_config_from_state(state: Mapping[str, Tensor], source: str = "checkpoint") -> ModelConfig:
    """Infer the ModelConfig of an mmdetection GFL state dict from its key names and shapes."""
    for prefix in (
        "backbone.conv1.weight",
        "neck.lateral_convs.0.conv.weight",
        "bbox_head.gfl_cls.weight",
        "bbox_head.gfl_reg.weight",
    ):
        if prefix not in state:
            raise WeightsError(f"{source}: not an mmdetection GFL (ResNet + FPN + GFLHead) state dict; no {prefix!r}")
    blocks = tuple(_count(state, rf"backbone\.{stage}\.(\d+)\.") for stage in _STAGES)
    bottleneck = "backbone.layer1.0.conv3.weight" in state
    depth = _DEPTHS.get((*blocks, bottleneck))
    if depth is None:
        raise WeightsError(
            f"{source}: ResNet with blocks per stage {blocks} (bottleneck={bottleneck}) is not a known depth"
        )
    deform_stages, deform_modulated = _deformable_stages(state, source)
    fpn_channels = state["neck.lateral_convs.0.conv.weight"].shape[0]
    laterals, outputs = _count(state, r"neck\.lateral_convs\.(\d+)\."), _count(state, r"neck\.fpn_convs\.(\d+)\.")
    if (laterals, outputs) != (3, 5) or state["neck.fpn_convs.3.conv.weight"].shape[1] != fpn_channels:
        raise WeightsError(
            f"{source}: FPN with {laterals} lateral and {outputs} output convs; gfocal imports "
            "start_level=1, num_outs=5, add_extra_convs='on_output' (P3-P7)"
        )
    cls_weight, reg_weight = state["bbox_head.gfl_cls.weight"], state["bbox_head.gfl_reg.weight"]
    if reg_weight.shape[0] % 4:
        raise WeightsError(f"{source}: gfl_reg has {reg_weight.shape[0]} outputs, not 4 x (reg_max + 1)")
    return ModelConfig(
        num_classes=cls_weight.shape[0],
        backbone=_body_name(state, depth, bottleneck, source),
        deform_stages=deform_stages,
        deform_modulated=deform_modulated,
        backbone_norm="frozen_bn",  # mmdetection's GFL: norm_eval=True, frozen_stages=1
        trainable_backbone_layers=3,
        fpn_channels=fpn_channels,
        stacked_convs=_count(state, r"bbox_head\.cls_convs\.(\d+)\."),
        feat_channels=cls_weight.shape[1],
        reg_max=reg_weight.shape[0] // 4 - 1,
        **MMDET_PREPROCESSING,
    )


def _body_name(state: Mapping[str, Tensor], depth: int, bottleneck: bool, source: str) -> str:
    """``resnet<depth>``, or ``resnext<depth>_<groups>x<width_per_group>d`` when the 3x3 convs are grouped."""
    if not bottleneck:
        return f"resnet{depth}"
    width, per_group = state["backbone.layer1.0.conv2.weight"].shape[:2]  # first stage: planes 64
    groups = width // per_group
    name = f"resnet{depth}" if groups == 1 else f"resnext{depth}_{groups}x{per_group}d"
    if name not in RESNET_LAYOUTS:
        known = ", ".join(k for k in RESNET_LAYOUTS if k.startswith("resnext"))
        raise WeightsError(f"{source}: a ResNeXt-{depth} {groups}x{per_group}d body; gfocal builds {known}")
    return name


def _deformable_stages(state: Mapping[str, Tensor], source: str) -> tuple[tuple[int, ...], bool]:
    """The stages (1-4) whose 3x3 convs are deformable, and whether they are modulated (DCN v2)."""
    offsets = {
        stage: state[key].shape[0]
        for stage in range(1, 5)
        if (key := f"backbone.layer{stage}.0.conv2.conv_offset.weight") in state
    }
    channels = set(offsets.values())
    if not channels:
        return (), False
    if len(channels) > 1 or not channels <= {18, 27}:
        raise WeightsError(
            f"{source}: deformable convs with {sorted(channels)} offset channels; gfocal imports one deform group "
            "of 3x3 kernels, 18 (DCN v1, type='DCN') or 27 (DCN v2, type='DCNv2') channels, the same in every stage"
        )
    return tuple(offsets), channels == {27}


def mmdet_to_gfocal_state(state: Mapping[str, Tensor], reg_max: int, source: str = "checkpoint") -> dict[str, Tensor]:
    """Rename mmdetection GFL keys to gfocal's; keys it does not know are kept under their own name
    (so that loading reports them as unexpected)."""
    mapped: dict[str, Tensor] = {}
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            continue
        if key == "bbox_head.integral.project":
            expected = torch.linspace(0, reg_max, reg_max + 1)
            if value.shape != expected.shape or not torch.allclose(value.float(), expected):
                raise WeightsError(f"{source}: bbox_head.integral.project is not the bins 0..{reg_max}")
            continue
        mapped[mmdet_key_to_gfocal(key)] = value
    return mapped


# The key mapping, one table for both directions: (mmdetection key, gfocal key) templates whose
# {fields} match the patterns of _FIELDS and are copied across. The head's towers are mapped apart.
_FIELDS = {"rest": r".+", "i": r"\d+", "level": r"[0-2]", "param": r"weight|bias"}
_KEYS = (
    ("backbone.{rest}", "backbone.body.{rest}"),
    ("neck.lateral_convs.{i}.conv.{param}", "backbone.fpn.inner_blocks.{i}.0.{param}"),
    ("neck.fpn_convs.{level}.conv.{param}", "backbone.fpn.layer_blocks.{level}.0.{param}"),
    ("neck.fpn_convs.3.conv.{param}", "backbone.fpn.extra_blocks.p6.{param}"),
    ("neck.fpn_convs.4.conv.{param}", "backbone.fpn.extra_blocks.p7.{param}"),
    ("bbox_head.gfl_cls.{param}", "head.cls_out.{param}"),
    ("bbox_head.gfl_reg.{param}", "head.box_out.{param}"),
    ("bbox_head.scales.{i}.scale", "head.scales.{i}.scale"),
)
# Each tower conv is [conv, GroupNorm, ReLU] in one nn.Sequential: 3 slots per mmdetection ConvModule.
_MMDET_TOWER = re.compile(r"bbox_head\.(cls|reg)_convs\.(\d+)\.(conv|gn)\.(weight|bias)")
_GFOCAL_TOWER = re.compile(r"head\.(cls|reg)_tower\.(\d+)\.(weight|bias)")


def _template(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", template)  # literal, field, literal, ...
    return re.compile("".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>{_FIELDS[p]})" for i, p in enumerate(parts)))


_TO_GFOCAL = [(_template(mmdet), gfocal) for mmdet, gfocal in _KEYS]
_TO_MMDET = [(_template(gfocal), mmdet) for mmdet, gfocal in _KEYS]


def _rename(key: str, rules: list[tuple[re.Pattern[str], str]]) -> str | None:
    for pattern, template in rules:
        match = pattern.fullmatch(key)
        if match:
            return template.format(**match.groupdict())
    return None


def mmdet_key_to_gfocal(key: str) -> str:
    """One mmdetection GFL key as the gfocal key holding the same tensor (unknown keys unchanged)."""
    tower = _MMDET_TOWER.fullmatch(key)
    if tower:
        branch, index, layer, kind = tower.groups()
        return f"head.{branch}_tower.{3 * int(index) + (layer == 'gn')}.{kind}"
    return _rename(key, _TO_GFOCAL) or key


def gfocal_key_to_mmdet(key: str) -> str | None:
    """One gfocal key as the mmdetection GFL key holding the same tensor; None where GFL has no such tensor."""
    tower = _GFOCAL_TOWER.fullmatch(key)
    if tower:
        branch, slot, kind = tower.groups()
        index, layer = divmod(int(slot), 3)
        return f"bbox_head.{branch}_convs.{index}.{('conv', 'gn')[layer]}.{kind}" if layer < 2 else None
    return _rename(key, _TO_MMDET)


def _count(state: Mapping[str, Tensor], pattern: str) -> int:
    indices = {int(m.group(1)) for key in state if (m := re.match(pattern, key))}
    return max(indices) + 1 if indices else 0


def _load_exactly(model: GFLDetector, state: dict[str, Tensor], origin: dict[str, str], source: str) -> None:
    expected = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    missing = sorted(k for k in expected if k not in state)
    unmatched = sorted(origin.get(k, k) for k in state if k not in expected)
    mis_shaped = [
        f"{origin.get(k, k)} -> {k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    if missing or unmatched or mis_shaped:
        lines = [
            f"{source}: does not map onto a gfocal GFL detector ({model.config.backbone}, {model.config.num_classes} classes, reg_max={model.config.reg_max})"
        ]
        for title, keys in (
            ("unmatched checkpoint keys", unmatched),
            ("model keys left empty", missing),
            ("mis-shaped", mis_shaped),
        ):
            if keys:
                lines.append(f"  {title} ({len(keys)}): " + ", ".join(keys))
        raise WeightsError("\n".join(lines))
    with torch.no_grad():
        model.load_state_dict(state, strict=False)
