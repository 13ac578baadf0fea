"""The ResNet and ResNeXt bodies (:class:`ResNetBody`), at torchvision's width or scaled, optionally deformable.

The bodies are torchvision's ``ResNet`` with the layouts of :data:`RESNET_LAYOUTS`; a ResNeXt is the
same network with grouped 3x3 convs (``groups`` x ``width_per_group`` channels at the first stage).
mmdetection's ``ResNeXt`` computes the 3x3 width as ``floor(planes * base_width / 64) * groups`` with
planes 64, 128, 256, 512 per stage, which is torchvision's ``int(planes * width_per_group / 64) * groups``,
and both put the stride on the 3x3 conv (``style="pytorch"``), so mmdetection's ResNeXt weights load by
name. ``ModelConfig.deform_stages`` turns the 3x3 convs of whole stages deformable
(:mod:`gfocal.models.deform_conv`), as mmdetection's ``stage_with_dcn``.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn
from torchvision.models import resnet
from torchvision.models.resnet import BasicBlock, Bottleneck

from gfocal.models.backbone import Body
from gfocal.models.config import ModelConfig
from gfocal.models.deform_conv import make_deformable

__all__ = ["RESNET_LAYOUTS", "ResNetLayout", "ResNetBody", "ScaledResNet"]


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

#: Where ImageNet weights of a body come from when torchvision has none, for the error that says so.
NO_TORCHVISION_WEIGHTS = {
    "resnext101_32x4d": (
        "torchvision has ResNeXt-101 32x8d and 64x4d, not 32x4d. mmdetection's GFL X-101-32x4d starts from "
        "open-mmlab://resnext101_32x4d (https://download.openmmlab.com/pretrain/third_party/"
        "resnext101_32x4d-a5af3160.pth): download it and pass its path (every key is checked on loading), "
        "or pick the backbone resnext101_32x8d or resnext101_64x4d, whose weights torchvision names"
    ),
}


class ResNetBody(Body):
    """A ResNet or ResNeXt body giving C3-C5 (strides 8, 16, 32), under torchvision's attribute names
    (``conv1``, ``bn1``, ``layer1``-``layer4``), so torchvision's and mmdetection's weights load by key.

    At ``backbone_width`` 64 it is torchvision's own ``ResNet`` (its classifier dropped); at another width the
    :class:`ScaledResNet` of the same layout, which has no ImageNet weights.
    """

    classifier_prefixes = ("fc.",)
    reads_options = ("backbone_width", "deform_stages", "deform_modulated")

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        layout = RESNET_LAYOUTS[config.backbone]
        if config.backbone_width == 64:  # torchvision's own network, so its ImageNet weights fit
            network: nn.Module = resnet.ResNet(
                layout.block, list(layout.layers), groups=layout.groups, width_per_group=layout.width_per_group
            )
        else:
            network = ScaledResNet(layout, config.backbone_width)
        for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
            self.add_module(name, getattr(network, name))
        _make_stages_deformable(self, layout, config.deform_stages, config.deform_modulated)
        self.name, self.width = config.backbone, config.backbone_width
        scaled_or_not_torchvision_s = config.backbone_width != 64 or config.backbone in NO_TORCHVISION_WEIGHTS
        self.torchvision_name = None if scaled_or_not_torchvision_s else config.backbone
        self.channels = tuple(_block_out_channels(getattr(self, f"layer{i}")[-1]) for i in (2, 3, 4))
        self.strides = (8, 16, 32)

    def forward(self, images: Tensor) -> list[Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        c3 = self.layer2(self.layer1(x))
        c4 = self.layer3(c3)
        return [c3, c4, self.layer4(c4)]

    def stages(self) -> list[nn.Module]:
        return [nn.ModuleList([self.conv1, self.bn1]), self.layer1, self.layer2, self.layer3, self.layer4]

    def new_in_detection(self, key: str) -> bool:
        # A deformable conv's offset branch is not in ImageNet files: it keeps its zero initialisation, as in mmdetection.
        return ".conv_offset." in key

    def missing_weights_hint(self) -> str:
        if self.width != 64:
            # ImageNet files hold torchvision's ResNet (64 stem channels); a narrower body has none to fit.
            return (
                f"ImageNet weights are for torchvision's {self.name} (backbone_width 64), but this model's body has "
                f"backbone_width {self.width} (gfl_nano's half-width ResNet-18): pick a model with a full-width body "
                "(gfl_small, gfl_resnet18_fpn, gfl_resnet50_fpn), or set model_overrides.backbone_width=64"
            )
        return NO_TORCHVISION_WEIGHTS[self.name]


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

    def __init__(self, layout: ResNetLayout, width: int) -> None:
        super().__init__()
        if layout.groups > 1 and width * layout.width_per_group < 64:
            # torchvision's grouped width, int(planes * width_per_group / 64) * groups, would round to zero.
            raise ValueError(
                f"a ResNeXt body of {layout.groups}x{layout.width_per_group}d needs backbone_width >= "
                f"{-(-64 // layout.width_per_group)}, got {width}"
            )
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        channels = width
        for index, (blocks, stride) in enumerate(zip(layout.layers, (1, 2, 2, 2))):
            planes = width * 2**index
            stage, channels = _stage(layout, channels, planes, blocks, stride)
            self.add_module(f"layer{index + 1}", stage)
        for module in self.modules():  # torchvision's ResNet initialisation
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)


def _stage(layout: ResNetLayout, in_channels: int, planes: int, blocks: int, stride: int) -> tuple[nn.Sequential, int]:
    """One ResNet stage of torchvision's blocks, and its output channels."""
    block = layout.block
    out_channels = planes * block.expansion
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = nn.Sequential(resnet.conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))
    grouping = {"groups": layout.groups, "base_width": layout.width_per_group}
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


def _block_out_channels(block: nn.Module) -> int:
    last_bn = block.bn3 if hasattr(block, "bn3") else block.bn2
    return last_bn.weight.shape[0]
