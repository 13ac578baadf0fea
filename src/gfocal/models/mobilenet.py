"""MobileNetV3-Large as a body (:class:`MobileNetV3Body`): torchvision's network, ImageNet weights by name.

torchvision's ``mobilenet_v3_large().features`` is a stem conv and 15 inverted-residual blocks, 4 of which
halve the resolution (their ``_is_cn``), then a 1x1 conv to 960 channels. The levels are the last block
before each of the next halvings: block 6 (stride 8, 40 channels), block 12 (stride 16, 112) and the final
1x1 conv (stride 32, 960), the ends of its stride-8, 16 and 32 stages. Those stages, the stride-4 stage and
the stem (with block 1) are the five stages ``trainable_backbone_layers`` counts, as a ResNet's.
"""

from __future__ import annotations

from torch import Tensor, nn
from torchvision.models import mobilenet_v3_large

from gfocal.models.backbone import Body
from gfocal.models.config import ModelConfig

__all__ = ["MobileNetV3Body"]


class MobileNetV3Body(Body):
    """torchvision's MobileNetV3-Large ``features`` (its key names), giving C3-C5 at strides 8, 16, 32.

    Its ImageNet weights are torchvision's ``MobileNet_V3_Large_Weights`` (``IMAGENET1K_V1``, and
    ``IMAGENET1K_V2`` = ``DEFAULT``).
    """

    torchvision_name = "mobilenet_v3_large"
    classifier_prefixes = ("classifier.",)

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.features = mobilenet_v3_large(weights=None).features
        # Stages start at the stem and at each block that halves the resolution (strides 2, 4, 8, 16, 32).
        starts = [0, *(i for i, block in enumerate(self.features) if getattr(block, "_is_cn", False))]
        self._stage_bounds = list(zip(starts, [*starts[1:], len(self.features)]))
        self._level_ends = [end - 1 for _, end in self._stage_bounds[-3:]]  # [6, 12, 16]
        self.channels = tuple(self.features[i].out_channels for i in self._level_ends)  # (40, 112, 960)
        self.strides = (8, 16, 32)

    def forward(self, images: Tensor) -> list[Tensor]:
        levels, x = [], images
        for index, block in enumerate(self.features):
            x = block(x)
            if index in self._level_ends:
                levels.append(x)
        return levels

    def stages(self) -> list[nn.Module]:
        return [self.features[start:end] for start, end in self._stage_bounds]
