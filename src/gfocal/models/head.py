"""The GFL head: shared classification and regression towers over all FPN levels.

Shape letters:
    N  images           C  classes (background excluded)
    A  locations over all levels, level-major then row-major
    B  outputs per edge: reg_max + 1 bins for a distribution, 1 for a Dirac box

The head maps features to outputs, nothing more: no decoding, no losses.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn

from gfocal.models.box_coding import BoxCoding
from gfocal.models.grid import flatten_locations
from gfocal.models.quality import QualityBranch

__all__ = ["GFLHead", "HeadOutputs", "Scale"]


class Scale(nn.Module):
    """A learnable scalar per FPN level multiplying the box outputs."""

    def __init__(self, value: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(value)))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale


class HeadOutputs(NamedTuple):
    """Per-location outputs flattened over levels, in float32.

    cls_logits (Tensor[N, A, C]): class logits (the joint score for QFL variants, before DGQP).
    box_outputs (Tensor[N, A, 4*B]): what the box coding predicts per edge (distribution logits, or
        distances in stride units), edges ordered left, top, right, bottom.
    quality_logits (Tensor[N, A, 1] | None): the quality branch's logits (centerness, DGQP), or None.
    """

    cls_logits: Tensor
    box_outputs: Tensor
    quality_logits: Tensor | None


def _tower(in_channels: int, channels: int, depth: int, groups: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [
            nn.Conv2d(in_channels if i == 0 else channels, channels, 3, padding=1, bias=False),
            nn.GroupNorm(groups, channels),
            nn.ReLU(inplace=True),
        ]
    return nn.Sequential(*layers)


class GFLHead(nn.Module):
    """Shared towers of ``stacked_convs`` x [3x3 conv, GroupNorm, ReLU], one Scale per level, a class
    conv, a box conv shaped by the box coding, and the quality branch.

    Args:
        in_channels: channels of every feature level.
        num_levels: feature levels.
        num_classes: C, background excluded.
        box_coding: the box representation (outputs per edge, initial bias, activation).
        quality: builds the quality branch from the regression tower's output channels; called after
            the other layers exist, so seeded initialisations do not depend on the branch.
        feat_channels, stacked_convs, norm_groups: the towers' width, depth and GroupNorm groups.
        prior_prob: initial foreground probability of the class scores.

    Reference: PAPER.md "Training recipe" (head) and "GFLv2 (DGQP)".
    """

    def __init__(
        self,
        in_channels: int,
        num_levels: int,
        num_classes: int,
        box_coding: BoxCoding,
        quality: Callable[[int], QualityBranch],
        feat_channels: int = 256,
        stacked_convs: int = 4,
        norm_groups: int = 32,
        prior_prob: float = 0.01,
    ) -> None:
        super().__init__()
        self.box_coding = box_coding
        self.cls_tower = _tower(in_channels, feat_channels, stacked_convs, norm_groups)
        self.reg_tower = _tower(in_channels, feat_channels, stacked_convs, norm_groups)
        tower_out = feat_channels if stacked_convs else in_channels
        self.cls_out = nn.Conv2d(tower_out, num_classes, 3, padding=1)
        self.box_out = nn.Conv2d(tower_out, 4 * box_coding.bins, 3, padding=1)
        self.scales = nn.ModuleList(Scale(1.0) for _ in range(num_levels))
        branch = quality(tower_out)
        # Registered under its historical name (head.centerness_out, head.dgqp) so old weights files load.
        self._quality_name = branch.weights_name
        self.add_module(branch.weights_name, branch)
        self._reset_parameters(prior_prob)

    @property
    def quality(self) -> QualityBranch:
        return self.get_submodule(self._quality_name)

    def _reset_parameters(self, prior_prob: float) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, std=0.01)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        nn.init.constant_(self.cls_out.bias, -math.log((1 - prior_prob) / prior_prob))
        self.box_coding.init_bias(self.box_out.bias)

    def forward(self, features: list[Tensor]) -> HeadOutputs:
        """features: list over levels of Tensor[N, in_channels, H_l, W_l]."""
        cls_levels, box_levels, reg_features = [], [], []
        for feature, scale in zip(features, self.scales):
            cls_feat = self.cls_tower(feature)
            reg_feat = self.reg_tower(feature)
            box = self.box_coding.activate(scale(self.box_out(reg_feat)))  # [N, 4*B, H, W]
            cls_levels.append(flatten_locations(self.cls_out(cls_feat)))
            box_levels.append(flatten_locations(box))
            reg_features.append(reg_feat)
        # Losses, the Integral and decoding run in float32 even under bf16/fp16 autocast.
        cls_logits = torch.cat(cls_levels, dim=1).float()  # [N, A, C]
        box_outputs = torch.cat(box_levels, dim=1).float()  # [N, A, 4*B]
        return HeadOutputs(cls_logits, box_outputs, self.quality.logits(reg_features, box_outputs))
