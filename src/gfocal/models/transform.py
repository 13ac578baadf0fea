"""Resize, normalise and batch images for the network, and map detections back.

Like torchvision's ``GeneralizedRCNNTransform`` but it leaves an image alone
when it already has the target size (the data pipeline usually resized it),
accepts uint8 images, and validates its input with messages a user can act on.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gfocal.models.config import ModelConfig

__all__ = ["ImageBatch", "DetectionTransform"]

_RANGE_SLACK = 1e-3  # float images may stray this far outside [0, 1] (resampling overshoot)


class ImageBatch(NamedTuple):
    """tensors (Tensor[N, 3, H, W]): normalised, zero-padded to a multiple of ``size_divisible``.
    image_sizes: (height, width) of each image inside the padding, after resizing.
    scales: (x, y) resize factors of each image (network pixels per original pixel)."""

    tensors: Tensor
    image_sizes: list[tuple[int, int]]
    scales: list[tuple[float, float]]


class DetectionTransform(nn.Module):
    """Keep-ratio resize (shorter side to ``min_size``, longer side at most ``max_size``), normalise, pad."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.min_size, self.max_size, self.size_divisible = config.min_size, config.max_size, config.size_divisible
        self.register_buffer("mean", torch.tensor(config.image_mean).view(3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(config.image_std).view(3, 1, 1), persistent=False)

    def forward(
        self, images: list[Tensor], targets: list[dict[str, Tensor]] | None = None
    ) -> tuple[ImageBatch, list[dict[str, Tensor]] | None]:
        _check_images(images)
        resized, sizes, scales = [], [], []
        for image in images:
            image = image.to(self.mean.device)
            image = image.float().div_(255) if image.dtype == torch.uint8 else image.float()
            height, width = image.shape[-2:]
            new_height, new_width = self._resized_size(height, width)
            if (new_height, new_width) != (height, width):
                image = F.interpolate(image[None], size=(new_height, new_width), mode="bilinear", align_corners=False)[0]
            resized.append((image - self.mean) / self.std)
            sizes.append((new_height, new_width))
            scales.append((new_width / width, new_height / height))
        if targets is not None:
            targets = [_scale_target(t, s) for t, s in zip(targets, scales)]
        return ImageBatch(self._pad(resized), sizes, scales), targets

    def _resized_size(self, height: int, width: int) -> tuple[int, int]:
        scale = min(self.min_size / min(height, width), self.max_size / max(height, width))
        # An image the data pipeline already resized rounds back to its own size: no resampling.
        return max(1, round(height * scale)), max(1, round(width * scale))

    def _pad(self, images: list[Tensor]) -> Tensor:
        divisor = self.size_divisible
        height = max(image.shape[-2] for image in images)
        width = max(image.shape[-1] for image in images)
        height, width = math.ceil(height / divisor) * divisor, math.ceil(width / divisor) * divisor
        batch = images[0].new_zeros(len(images), 3, height, width)
        for slot, image in zip(batch, images):
            slot[:, : image.shape[-2], : image.shape[-1]].copy_(image)
        return batch

    @staticmethod
    def postprocess(
        detections: list[dict[str, Tensor]], scales: list[tuple[float, float]]
    ) -> list[dict[str, Tensor]]:
        """Map boxes and per-edge pixel uncertainties back to original image pixels."""
        for detection, (scale_x, scale_y) in zip(detections, scales):
            if (scale_x, scale_y) != (1.0, 1.0):
                per_edge = detection["boxes"].new_tensor([scale_x, scale_y, scale_x, scale_y])
                for key in ("boxes", "edge_std", "bin_size"):
                    if key in detection:
                        detection[key] = detection[key] / per_edge
        return detections


def _scale_target(target: dict[str, Tensor], scale: tuple[float, float]) -> dict[str, Tensor]:
    if scale == (1.0, 1.0):
        return target
    scale_x, scale_y = scale
    return {**target, "boxes": target["boxes"] * target["boxes"].new_tensor([scale_x, scale_y, scale_x, scale_y])}


def _check_images(images: list[Tensor]) -> None:
    if not isinstance(images, (list, tuple)) or not images:
        raise ValueError("images must be a non-empty list of Tensor[3, H, W]")
    for index, image in enumerate(images):
        if not isinstance(image, Tensor):
            raise TypeError(f"images[{index}] is a {type(image).__name__}, expected a Tensor[3, H, W]")
        if image.dim() != 3 or image.shape[0] != 3:
            raise ValueError(
                f"images[{index}] has shape {tuple(image.shape)}; expected [3, H, W] (RGB, channels first)"
            )
        if image.shape[1] < 1 or image.shape[2] < 1:
            raise ValueError(f"images[{index}] is empty: shape {tuple(image.shape)}")
        if image.dtype != torch.uint8 and not image.dtype.is_floating_point:
            raise TypeError(f"images[{index}] has dtype {image.dtype}; expected uint8 (0-255) or float (0-1)")
        if image.dtype.is_floating_point:
            if not torch.isfinite(image).all():
                raise ValueError(f"images[{index}] contains NaN or infinite pixel values")
            low, high = image.aminmax()
            # 0-255 floats or pre-normalised images would be normalised again: wrong results, no error.
            if low < -_RANGE_SLACK or high > 1 + _RANGE_SLACK:
                raise ValueError(f"images[{index}] is float with values in [{low.item():.4g}, {high.item():.4g}]; "
                                 "float images must be in [0, 1] (divide 0-255 values by 255, or pass uint8), "
                                 "not normalised: the model normalises them itself")
