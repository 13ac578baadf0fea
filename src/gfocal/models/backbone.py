"""What a backbone is (:class:`Backbone`), and the one gfocal ships: a ResNet or ResNeXt body + FPN (P3-P7).

The bodies are torchvision's ``ResNet`` with the layouts of :data:`RESNET_LAYOUTS`; a ResNeXt is the
same network with grouped 3x3 convs (``groups`` x ``width_per_group`` channels at the first stage).
mmdetection's ``ResNeXt`` computes the 3x3 width as ``floor(planes * base_width / 64) * groups`` with
planes 64, 128, 256, 512 per stage, which is torchvision's ``int(planes * width_per_group / 64) * groups``,
and both put the stride on the 3x3 conv (``style="pytorch"``), so mmdetection's ResNeXt weights load by
name. ``ModelConfig.deform_stages`` turns the 3x3 convs of whole stages deformable
(:mod:`gfocal.models.deform_conv`), as mmdetection's ``stage_with_dcn``.

The extra levels P6 and P7 come from the P5 *output* (mmdetection's
``add_extra_convs="on_output"``), which is torchvision's ``LastLevelP6P7`` when
its in and out channels are equal. torchvision applies a ReLU between P6 and the
P7 conv, mmdetection's GFL does not (``relu_before_extra_convs=False``); the
config's ``relu_before_extra_convs`` picks one.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import resnet
from torchvision.models.resnet import BasicBlock, Bottleneck
from torchvision.ops import FeaturePyramidNetwork, FrozenBatchNorm2d
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

from gfocal.models.config import ModelConfig
from gfocal.models.deform_conv import make_deformable

__all__ = ["Backbone", "ResNetFPN", "ScaledResNet", "FrozenBatchNorm", "ResNetLayout", "load_backbone_weights"]


@dataclass(frozen=True)
class ResNetLayout:
    """A ResNet or ResNeXt: its block, blocks per stage, and the grouping of its 3x3 convs."""

    block: type[BasicBlock] | type[Bottleneck]
    layers: tuple[int, int, int, int]
    groups: int = 1
    width_per_group: int = 64


#: Body layouts by ``ModelConfig.backbone``: torchvision's ResNets and ResNeXts, and ResNeXt-101 32x4d
#: (mmdetection's, which torchvision has no constructor or ImageNet weights for).
RESNET_LAYOUTS: dict[str, ResNetLayout] = {
    "resnet18": ResNetLayout(BasicBlock, (2, 2, 2, 2)),
    "resnet34": ResNetLayout(BasicBlock, (3, 4, 6, 3)),
    "resnet50": ResNetLayout(Bottleneck, (3, 4, 6, 3)),
    "resnet101": ResNetLayout(Bottleneck, (3, 4, 23, 3)),
    "resnet152": ResNetLayout(Bottleneck, (3, 8, 36, 3)),
    "resnext50_32x4d": ResNetLayout(Bottleneck, (3, 4, 6, 3), groups=32, width_per_group=4),
    "resnext101_32x4d": ResNetLayout(Bottleneck, (3, 4, 23, 3), groups=32, width_per_group=4),
    "resnext101_32x8d": ResNetLayout(Bottleneck, (3, 4, 23, 3), groups=32, width_per_group=8),
    "resnext101_64x4d": ResNetLayout(Bottleneck, (3, 4, 23, 3), groups=64, width_per_group=4),
}


class Backbone(Protocol):
    """Any module giving feature maps for the head (an ``nn.Module`` in practice).

    Called on Tensor[N, 3, H, W] normalised images (H, W padded to ``size_divisible``), it returns one
    Tensor[N, out_channels, H / s, W / s] per stride s in ``strides``, finest first.
    """

    out_channels: int
    strides: tuple[int, ...]

    def __call__(self, images: Tensor) -> list[Tensor]: ...


class ResNetFPN(nn.Module):
    """ResNet C3-C5 features through an FPN, giving len(strides) levels of ``fpn_channels``.

    Input: Tensor[N, 3, H, W] normalised images (H, W divisible by the largest stride
    for exact level sizes). Output: list of Tensor[N, fpn_channels, H/s, W/s], s in strides.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if tuple(config.strides) != (8, 16, 32, 64, 128):
            raise ValueError(f"ResNetFPN builds levels P3-P7 (strides 8..128), got strides={config.strides}")
        norm_layer = FrozenBatchNorm if config.backbone_norm == "frozen_bn" else nn.BatchNorm2d
        layout = RESNET_LAYOUTS[config.backbone]
        if config.backbone_width == 64:  # torchvision's own network, so its ImageNet weights fit
            body = resnet.ResNet(
                layout.block,
                list(layout.layers),
                groups=layout.groups,
                width_per_group=layout.width_per_group,
                norm_layer=norm_layer,
            )
            del body.fc, body.avgpool
        else:
            body = ScaledResNet(layout, config.backbone_width, norm_layer)
        _make_stages_deformable(body, layout, config.deform_stages, config.deform_modulated)
        self.body = body
        self.out_channels, self.strides = config.fpn_channels, tuple(config.strides)
        self._freeze(config.trainable_backbone_layers)
        stage_channels = [body.layer2[-1], body.layer3[-1], body.layer4[-1]]
        in_channels = [_block_out_channels(block) for block in stage_channels]
        self.fpn = FeaturePyramidNetwork(
            in_channels,
            config.fpn_channels,
            extra_blocks=_ExtraLevels(config.fpn_channels, config.relu_before_extra_convs),
        )

    def _freeze(self, trainable_layers: int) -> None:
        if not 0 <= trainable_layers <= 5:
            raise ValueError(f"trainable_backbone_layers must be in [0, 5], got {trainable_layers}")
        trainable = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable_layers]
        if trainable_layers == 5:
            trainable.append("bn1")
        for name, parameter in self.body.named_parameters():
            if not any(name.startswith(prefix) for prefix in trainable):
                parameter.requires_grad_(False)

    def forward(self, images: Tensor) -> list[Tensor]:
        body = self.body
        x = body.maxpool(body.relu(body.bn1(body.conv1(images))))
        c2 = body.layer1(x)
        c3 = body.layer2(c2)
        c4 = body.layer3(c3)
        c5 = body.layer4(c4)
        features = self.fpn(OrderedDict((("c3", c3), ("c4", c4), ("c5", c5))))
        return list(features.values())


class ScaledResNet(nn.Module):
    """torchvision's ResNet body (stem, ``layer1``-``layer4`` of its own blocks) with every width scaled.

    ``width`` is the stem's and the first stage's channels (torchvision's is 64); the
    stages have ``width * (1, 2, 4, 8) * block.expansion`` output channels (a ResNeXt's grouped
    convs are scaled alike). At width 32 a
    ResNet-18 does a quarter of the multiply-adds, which is what makes training from
    scratch on a CPU take minutes instead of hours. Attribute names are torchvision's,
    so freezing, BatchNorm folding and the FPN treat it as they treat a ResNet; there are
    no ImageNet weights for it.
    """

    def __init__(self, layout: ResNetLayout, width: int, norm_layer: type[nn.Module] = nn.BatchNorm2d) -> None:
        super().__init__()
        if layout.groups > 1 and width * layout.width_per_group < 64:
            # torchvision's grouped width, int(planes * width_per_group / 64) * groups, would round to zero.
            raise ValueError(
                f"a ResNeXt body of {layout.groups}x{layout.width_per_group}d needs backbone_width >= "
                f"{-(-64 // layout.width_per_group)}, got {width}"
            )
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        channels = width
        for index, (blocks, stride) in enumerate(zip(layout.layers, (1, 2, 2, 2))):
            planes = width * 2**index
            stage, channels = _stage(layout, channels, planes, blocks, stride, norm_layer)
            self.add_module(f"layer{index + 1}", stage)
        for module in self.modules():  # torchvision's ResNet initialisation
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)


def _stage(
    layout: ResNetLayout, in_channels: int, planes: int, blocks: int, stride: int, norm_layer: type[nn.Module]
) -> tuple[nn.Sequential, int]:
    """One ResNet stage of torchvision's blocks, and its output channels."""
    block = layout.block
    out_channels = planes * block.expansion
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = nn.Sequential(resnet.conv1x1(in_channels, out_channels, stride), norm_layer(out_channels))
    grouping = {"groups": layout.groups, "base_width": layout.width_per_group, "norm_layer": norm_layer}
    first = block(in_channels, planes, stride, downsample, **grouping)
    rest = [block(out_channels, planes, **grouping) for _ in range(blocks - 1)]
    return nn.Sequential(first, *rest), out_channels


def _make_stages_deformable(body: nn.Module, layout: ResNetLayout, stages: tuple[int, ...], modulated: bool) -> None:
    """Replace the 3x3 conv (``conv2``) of every bottleneck in ``stages`` (1-4: ``layer1``-``layer4``) by a
    deformable conv of the same shape, as mmdetection's ``stage_with_dcn`` with ``fallback_on_stride=False``."""
    if stages and layout.block is not Bottleneck:
        raise ValueError(f"deform_stages={stages} needs a bottleneck ResNet (resnet50 and deeper, resnext*)")
    for stage in stages:
        for block in getattr(body, f"layer{stage}"):
            block.conv2 = make_deformable(block.conv2, modulated)


class FrozenBatchNorm(FrozenBatchNorm2d):
    """torchvision's FrozenBatchNorm2d (same buffers and state-dict keys) that keeps its input's dtype.

    The stock one multiplies by float32 buffers, which under bf16 autocast promotes
    every activation of a frozen-BN body to float32 and halves the speed of the
    convolutions around it. Eval-mode batch norm takes bf16 input with float32
    statistics and returns bf16.
    """

    def forward(self, x: Tensor) -> Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


class _ExtraLevels(LastLevelP6P7):
    """P6 = conv(P5 output), P7 = conv(P6), with a ReLU before the P7 conv if ``relu``; always float32.

    These maps are a few pixels wide, so float32 costs nothing here, and it sidesteps a
    oneDNN bug: under CPU bf16 autocast the weight gradient of a stride-2 conv on a 1x1
    input comes back as garbage (~1e26), which small images (P6 of 1x1) hit.
    """

    def __init__(self, channels: int, relu: bool) -> None:
        super().__init__(channels, channels)
        self.relu = relu

    def forward(self, p: list[Tensor], c: list[Tensor], names: list[str]) -> tuple[list[Tensor], list[str]]:
        with torch.autocast(p[-1].device.type, enabled=False):
            p6 = self.p6(p[-1].float())
            p7 = self.p7(p6.relu() if self.relu else p6)
        return [*p, p6, p7], [*names, "p6", "p7"]


def _block_out_channels(block: nn.Module) -> int:
    last_bn = block.bn3 if hasattr(block, "bn3") else block.bn2
    return last_bn.weight.shape[0]


def load_backbone_weights(backbone: ResNetFPN, path: str | Path) -> None:
    """Load ImageNet (or other) ResNet weights from a local file into the body.

    Accepts torchvision ``resnet*.pth`` state dicts and safetensors files; the
    classifier (``fc.*``) and BatchNorm counters are ignored. A deformable conv's offset branch
    (``conv_offset.*``) is not in ImageNet files and keeps its zero initialisation, as in mmdetection.
    Any other missing or unexpected key is an error.
    """
    from gfocal.models.weights import read_state_dict

    state = read_state_dict(path)
    state = {k.removeprefix("module.").removeprefix("backbone.").removeprefix("body."): v for k, v in state.items()}
    # BatchNorm step counters carry no weights, and a frozen-BN body has none.
    state = {k: v for k, v in state.items() if not k.startswith("fc.") and not k.endswith("num_batches_tracked")}
    expected = backbone.body.state_dict()
    missing = sorted(
        k for k in expected if k not in state and not k.endswith("num_batches_tracked") and ".conv_offset." not in k
    )
    unexpected = sorted(k for k in state if k not in expected)
    mis_shaped = sorted(k for k in state if k in expected and state[k].shape != expected[k].shape)
    if missing or unexpected or mis_shaped:
        raise ValueError(
            f"backbone weights {path} do not fit {type(backbone.body).__name__}: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}, "
            f"mis-shaped {mis_shaped[:5]}"
        )
    with torch.no_grad():
        backbone.body.load_state_dict(state, strict=False)
