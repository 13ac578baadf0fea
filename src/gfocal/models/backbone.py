"""What a backbone is: :class:`Backbone` (what the detector calls), and :class:`Body` + :class:`FPNBackbone`
(a classification network cut into levels, under an FPN that adds the extra levels).

A :class:`Body` is the part of an ImageNet network that a detector keeps; it says which levels it gives
(``channels``, ``strides``), what its stages are (``stages()``, from the input on), and which torchvision
weights fit it by key (``torchvision_name``, ``classifier_prefixes``). From that alone the base class owns, for
every body alike, loading ImageNet weights by torchvision name or file (:meth:`Body.load_imagenet`), freezing
the first stages (:meth:`Body.freeze`) and freezing BatchNorm (:func:`freeze_batchnorm`). Adding a torchvision
network is one file with its ``Body`` and one line in ``gfocal.models.components.BACKBONES``
(docs/architecture.md); the ResNets are ``gfocal.models.resnet``, MobileNetV3 ``gfocal.models.mobilenet``.

:class:`FPNBackbone` puts torchvision's FPN on any body and adds the levels the config's ``strides`` name beyond
the body's, each a stride-2 3x3 conv, the first on the top FPN *output* (mmdetection's
``add_extra_convs="on_output"``; torchvision's ``LastLevelP6P7`` when its in and out channels are equal).
torchvision applies a ReLU before each conv after the first, mmdetection's GFL does not
(``relu_before_extra_convs=False``); the config's ``relu_before_extra_convs`` picks one.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import FeaturePyramidNetwork, FrozenBatchNorm2d
from torchvision.ops.feature_pyramid_network import ExtraFPNBlock

from gfocal.models.config import ModelConfig
from gfocal.models.pretrained import resolve_backbone_weights
from gfocal.weights_file import WeightsError, read_tensors

__all__ = ["Backbone", "Body", "FPNBackbone", "ExtraLevels", "FrozenBatchNorm", "freeze_batchnorm"]

#: ModelConfig fields that only some bodies read (a ResNet's); another body refuses them unless at their default.
BODY_OPTIONS = {"backbone_width": 64, "deform_stages": (), "deform_modulated": False}


class Backbone(Protocol):
    """Any module giving feature maps for the head (an ``nn.Module`` in practice).

    Called on Tensor[N, 3, H, W] normalised images (H, W padded to ``size_divisible``), it returns one
    Tensor[N, out_channels, H / s, W / s] per stride s in ``strides``, finest first.
    """

    out_channels: int
    strides: tuple[int, ...]

    def __call__(self, images: Tensor) -> list[Tensor]: ...


class Body(nn.Module, ABC):
    """A classification network's feature extractor, cut at the levels an FPN reads.

    A subclass builds its layers from the ``ModelConfig`` under the names torchvision's network gives them (so
    ImageNet state dicts fit by key), sets ``channels`` and ``strides`` (of the maps ``forward`` returns, finest
    first), and says:

    - ``torchvision_name``: the torchvision model whose weights enum fits (``get_model_weights``), or None;
    - ``classifier_prefixes``: keys of those weights that the body leaves out (the classifier);
    - ``reads_options``: which of :data:`BODY_OPTIONS` it reads (another value of the others is refused);
    - ``stages()``: its stages from the input on, the unit of :meth:`freeze`.
    """

    torchvision_name: str | None = None
    classifier_prefixes: ClassVar[tuple[str, ...]] = ()
    reads_options: ClassVar[tuple[str, ...]] = ()
    channels: tuple[int, ...]
    strides: tuple[int, ...]

    @abstractmethod
    def forward(self, images: Tensor) -> list[Tensor]:
        """Tensor[N, 3, H, W] -> one Tensor[N, channels[i], H / strides[i], W / strides[i]] per level."""

    @abstractmethod
    def stages(self) -> list[nn.Module]:
        """The stages from the input on (the stem first); freezing counts them from the top."""

    def missing_weights_hint(self) -> str:
        """Why ``torchvision_name`` is None, and where ImageNet weights come from then (for the errors)."""
        return f"torchvision has no weights for {type(self).__name__}: pass a weights file"

    def new_in_detection(self, key: str) -> bool:
        """Whether the body's tensor ``key`` has no counterpart in ImageNet weights (keeps its initialisation)."""
        return False

    def freeze(self, trainable_stages: int) -> None:
        """Stop gradients to all but the last ``trainable_stages`` of :meth:`stages` (0: all frozen)."""
        stages = self.stages()
        if not 0 <= trainable_stages <= len(stages):
            raise ValueError(
                f"trainable_backbone_layers must be in [0, {len(stages)}] for {type(self).__name__}, "
                f"got {trainable_stages}"
            )
        for stage in stages[: len(stages) - trainable_stages]:
            stage.requires_grad_(False)

    def load_imagenet(self, weights: str | Path) -> None:
        """Load ImageNet (or other) weights of this body: a file, or a torchvision weights name of
        ``torchvision_name`` (``DEFAULT``, ``IMAGENET1K_V1``, ``MobileNet_V3_Large_Weights.IMAGENET1K_V1``),
        downloaded into the torch hub cache when absent.

        The classifier (``classifier_prefixes``) and BatchNorm counters are ignored, ``module.``/``backbone.``/
        ``body.`` prefixes removed; tensors :meth:`new_in_detection` keep their initialisation. Any other missing,
        unexpected or mis-shaped key is a :class:`WeightsError` naming the file.
        """
        hint = "" if self.torchvision_name else self.missing_weights_hint()
        path = resolve_backbone_weights(weights, self.torchvision_name, hint)
        state = {
            k.removeprefix("module.").removeprefix("backbone.").removeprefix("body."): v
            for k, v in read_tensors(path).items()
        }
        # BatchNorm step counters carry no weights, and a frozen-BN body has none.
        state = {
            k: v
            for k, v in state.items()
            if not k.startswith(self.classifier_prefixes) and not k.endswith("num_batches_tracked")
        }
        expected = self.state_dict()
        missing = sorted(
            k
            for k in expected
            if k not in state and not k.endswith("num_batches_tracked") and not self.new_in_detection(k)
        )
        unexpected = sorted(k for k in state if k not in expected)
        mis_shaped = sorted(k for k in state if k in expected and state[k].shape != expected[k].shape)
        if missing or unexpected or mis_shaped:
            raise WeightsError(
                f"{path}: backbone weights do not fit {type(self).__name__}: "
                f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}, "
                f"mis-shaped {mis_shaped[:5]}" + (f"; {hint}" if hint else "")
            )
        with torch.no_grad():
            self.load_state_dict(state, strict=False)


class FPNBackbone(nn.Module):
    """A :class:`Body` through torchvision's FPN, giving ``fpn_channels`` maps at every stride of ``config.strides``.

    ``config.strides`` starts with the body's strides; each further one doubles the last and is an extra level
    (:class:`ExtraLevels`). ``backbone_norm="frozen_bn"`` freezes the body's BatchNorm and
    ``trainable_backbone_layers`` its first stages, whatever the body.

    Input: Tensor[N, 3, H, W] normalised images (H, W divisible by the largest stride for exact level sizes).
    Output: list of Tensor[N, fpn_channels, H/s, W/s], s in strides.
    """

    def __init__(self, body: Callable[[ModelConfig], Body], config: ModelConfig) -> None:
        super().__init__()
        self.body = body(config)
        _refuse_options_not_read(self.body, config)
        levels = len(self.body.strides)
        strides = tuple(config.strides)
        extra = strides[levels:]
        doubling = all(b == 2 * a for a, b in zip(strides[levels - 1 :], extra))
        if strides[:levels] != self.body.strides or not doubling:
            raise ValueError(
                f"{type(self.body).__name__} gives strides {self.body.strides}; strides must start with them and "
                f"double from there (extra levels), got {config.strides}"
            )
        if config.backbone_norm == "frozen_bn":
            freeze_batchnorm(self.body)
        self.body.freeze(config.trainable_backbone_layers)
        self.out_channels, self.strides = config.fpn_channels, strides
        extra_blocks = ExtraLevels(config.fpn_channels, extra, config.relu_before_extra_convs) if extra else None
        self.fpn = FeaturePyramidNetwork(list(self.body.channels), config.fpn_channels, extra_blocks=extra_blocks)

    def load_imagenet(self, weights: str | Path) -> None:
        """ImageNet weights into the body (:meth:`Body.load_imagenet`); the FPN keeps its initialisation."""
        self.body.load_imagenet(weights)

    def forward(self, images: Tensor) -> list[Tensor]:
        names = [f"c{int(math.log2(s))}" for s in self.body.strides]
        return list(self.fpn(OrderedDict(zip(names, self.body(images)))).values())


class ExtraLevels(ExtraFPNBlock):
    """One stride-2 3x3 conv per extra stride, the first on the top FPN output, each next on the previous
    level (with a ReLU before it if ``relu``); named ``p<log2 stride>`` (``p6``, ``p7``), always float32.

    These maps are a few pixels wide, so float32 costs nothing here, and it sidesteps a
    oneDNN bug: under CPU bf16 autocast the weight gradient of a stride-2 conv on a 1x1
    input comes back as garbage (~1e26), which small images (P6 of 1x1) hit.
    """

    def __init__(self, channels: int, strides: tuple[int, ...], relu: bool) -> None:
        super().__init__()
        self.names = [f"p{int(math.log2(s))}" for s in strides]
        for name in self.names:
            self.add_module(name, nn.Conv2d(channels, channels, 3, 2, 1))
        for name in self.names:  # torchvision's LastLevelP6P7 initialisation
            conv = getattr(self, name)
            nn.init.kaiming_uniform_(conv.weight, a=1)
            nn.init.constant_(conv.bias, 0)
        self.relu = relu

    def forward(self, p: list[Tensor], c: list[Tensor], names: list[str]) -> tuple[list[Tensor], list[str]]:
        levels = []
        with torch.autocast(p[-1].device.type, enabled=False):
            x = p[-1].float()
            for index, name in enumerate(self.names):
                x = getattr(self, name)(x.relu() if self.relu and index > 0 else x)
                levels.append(x)
        return [*p, *levels], [*names, *self.names]


class FrozenBatchNorm(FrozenBatchNorm2d):
    """torchvision's FrozenBatchNorm2d (same buffers and state-dict keys) that keeps its input's dtype.

    The stock one multiplies by float32 buffers, which under bf16 autocast promotes
    every activation of a frozen-BN body to float32 and halves the speed of the
    convolutions around it. Eval-mode batch norm takes bf16 input with float32
    statistics and returns bf16.
    """

    def forward(self, x: Tensor) -> Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


def freeze_batchnorm(module: nn.Module) -> None:
    """Replace every ``nn.BatchNorm2d`` under ``module`` by a :class:`FrozenBatchNorm` with its ``eps`` and
    statistics, in place (same state-dict keys, so weights load before or after)."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm(child.num_features, eps=child.eps)
            with torch.no_grad():
                for tensor in ("weight", "bias", "running_mean", "running_var"):
                    getattr(frozen, tensor).copy_(getattr(child, tensor))
            setattr(module, name, frozen)
        else:
            freeze_batchnorm(child)


def _refuse_options_not_read(body: Body, config: ModelConfig) -> None:
    for name, default in BODY_OPTIONS.items():
        if name not in body.reads_options and getattr(config, name) != default:
            raise ValueError(
                f"backbone {config.backbone!r} does not read {name} (a ResNet option); got {name}={getattr(config, name)!r}"
            )
