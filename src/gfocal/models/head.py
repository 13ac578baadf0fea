"""The GFL head: shared classification and regression towers over all FPN levels.

Shape letters:
    N  images           C  classes (background excluded)
    A  locations over all levels, level-major then row-major
    B  outputs per edge: reg_max + 1 bins for a distribution, 1 for a Dirac box

The head maps features to outputs, nothing more: no decoding, no losses.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn

from gfocal.models.config import ModelConfig

__all__ = ["GFLHead", "HeadOutputs", "Scale", "joint_score_logits"]


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
    box_outputs (Tensor[N, A, 4*B]): edge distribution logits (``box="dfl"``) or edge distances in
        stride units (``box="dirac"``), edges ordered left, top, right, bottom.
    quality_logits (Tensor[N, A, 1] | None): centerness logits (``classification="focal"``) or the
        DGQP quality logits (``dgqp=True``); None otherwise.
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


def _flatten(x: Tensor) -> Tensor:
    # [N, K, H, W] -> [N, H*W, K]
    return x.flatten(2).transpose(1, 2)


class GFLHead(nn.Module):
    """Shared towers of ``stacked_convs`` x [3x3 conv, GroupNorm, ReLU], one Scale per level.

    Reference: PAPER.md "Training recipe" (head) and "GFLv2 (DGQP)".
    """

    def __init__(self, config: ModelConfig, in_channels: int, num_levels: int) -> None:
        super().__init__()
        self.config = config
        channels, depth, groups = config.feat_channels, config.stacked_convs, config.norm_groups
        self.cls_tower = _tower(in_channels, channels, depth, groups)
        self.reg_tower = _tower(in_channels, channels, depth, groups)
        tower_out = channels if depth else in_channels
        self.cls_out = nn.Conv2d(tower_out, config.num_classes, 3, padding=1)
        self.box_out = nn.Conv2d(tower_out, 4 * config.bins, 3, padding=1)
        self.scales = nn.ModuleList(Scale(1.0) for _ in range(num_levels))
        self.centerness_out = nn.Conv2d(tower_out, 1, 3, padding=1) if config.classification == "focal" else None
        self.dgqp = (
            nn.Sequential(
                nn.Conv2d(4 * (config.dgqp_topk + 1), config.dgqp_channels, 1),
                nn.ReLU(inplace=True),
                nn.Conv2d(config.dgqp_channels, 1, 1),
            )
            if config.dgqp
            else None
        )
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, std=0.01)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        nn.init.constant_(self.cls_out.bias, -math.log((1 - self.config.prior_prob) / self.config.prior_prob))
        if self.config.box == "dirac":
            # Start from the ATSS anchor (anchor_scale strides square), as an anchor-based baseline does.
            # From zero bias the boxes start near zero size, where GIoU has almost no gradient (a point
            # inside its target scores GIoU 0 however it grows by a little): in the ablation one of three
            # QFL-only runs never left them, and the others learned slowly. DFL starts at reg_max / 2.
            nn.init.constant_(self.box_out.bias, self.config.anchor_scale / 2)

    def forward(self, features: list[Tensor]) -> HeadOutputs:
        """features: list over levels of Tensor[N, in_channels, H_l, W_l]."""
        cls_levels, box_levels, quality_levels = [], [], []
        for feature, scale in zip(features, self.scales):
            cls_feat = self.cls_tower(feature)
            reg_feat = self.reg_tower(feature)
            box = scale(self.box_out(reg_feat))  # [N, 4*B, H, W]
            if self.config.box == "dirac":
                box = box.relu()
            cls_levels.append(_flatten(self.cls_out(cls_feat)))
            box_levels.append(_flatten(box))
            if self.centerness_out is not None:
                quality_levels.append(_flatten(self.centerness_out(reg_feat)))
        # Losses, the Integral and decoding run in float32 even under bf16/fp16 autocast.
        cls_logits = torch.cat(cls_levels, dim=1).float()  # [N, A, C]
        box_outputs = torch.cat(box_levels, dim=1).float()  # [N, A, 4*B]
        quality = torch.cat(quality_levels, dim=1).float() if quality_levels else None  # [N, A, 1]
        if self.dgqp is not None:
            quality = self._distribution_guided_quality(box_outputs)
        return HeadOutputs(cls_logits, box_outputs, quality)

    def _distribution_guided_quality(self, box_outputs: Tensor) -> Tensor:
        """GFLv2's DGQP: top-k probabilities and their mean per edge -> 1x1 convs -> quality logit."""
        n, a, _ = box_outputs.shape
        probs = box_outputs.reshape(n, a, 4, -1).softmax(-1)  # [N, A, 4, B]
        topk = probs.topk(self.config.dgqp_topk, dim=-1).values  # [N, A, 4, k]
        stats = torch.cat((topk, topk.mean(-1, keepdim=True)), dim=-1).reshape(n, a, -1)  # [N, A, 4*(k+1)]
        # A 1x1 conv over locations is a linear map over the statistics; run it as [N, 4*(k+1), A, 1].
        quality = self.dgqp(stats.transpose(1, 2).unsqueeze(-1).to(self.dgqp[0].weight.dtype))
        return quality.squeeze(-1).transpose(1, 2).float()  # [N, A, 1]


def joint_score_logits(cls_logits: Tensor, quality_logits: Tensor) -> Tensor:
    """Logits of the product score ``sigmoid(cls) * sigmoid(quality)``.

    Expressing the product as a logit lets every variant share one loss (QFL
    takes logits) and one post-processing path (sigmoid of score logits).

    Args:
        cls_logits (Tensor[..., C]): class logits.
        quality_logits (Tensor[..., 1]): quality logits, broadcast over classes.

    Returns:
        Tensor[..., C]: ``logit(sigmoid(cls) * sigmoid(quality))``, finite for finite inputs.
    """
    log_p = nn.functional.logsigmoid(cls_logits) + nn.functional.logsigmoid(quality_logits)
    log_one_minus_p = torch.log(-torch.expm1(log_p).clamp(max=-torch.finfo(log_p.dtype).tiny))
    return log_p - log_one_minus_p
