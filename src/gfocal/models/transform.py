"""Resize, normalise and batch images for the network, and map detections back.

Like torchvision's ``GeneralizedRCNNTransform``, with the size rule and the
resampling of :mod:`gfocal.image_geometry` (shared with the data pipeline, so an
image the pipeline already resized is left alone), uint8 input accepted, and
input validated with messages a user can act on.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn

from gfocal.image_geometry import fit_size, resize_image, to_original_pixels
from gfocal.models.config import ModelConfig

__all__ = ["ImageBatch", "DetectionTransform"]

_RANGE_SLACK = 1e-3  # float images may stray this far outside [0, 1] (resampling overshoot)


class ImageBatch(NamedTuple):
    """tensors (Tensor[N, 3, H, W]): normalised, zero-padded to a multiple of ``size_divisible``.
    image_sizes: (height, width) of each image inside the padding, after resizing.
    scales: (x, y) resize factors of each image (network pixels per original pixel).
    original_sizes: (height, width) of each image as given."""

    tensors: Tensor
    image_sizes: list[tuple[int, int]]
    scales: list[tuple[float, float]]
    original_sizes: list[tuple[int, int]]


class DetectionTransform(nn.Module):
    """Keep-ratio resize (shorter side to ``min_size``, longer side at most ``max_size``), normalise, pad."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.min_size, self.max_size, self.size_divisible = config.min_size, config.max_size, config.size_divisible
        self.register_buffer("mean", torch.tensor(config.image_mean).view(3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(config.image_std).view(3, 1, 1), persistent=False)

    def forward(
        self,
        images: list[Tensor],
        targets: list[dict[str, Tensor]] | None = None,
        input_size: tuple[int, int] | None = None,
    ) -> tuple[ImageBatch, list[dict[str, Tensor]] | None]:
        """Resize (keep ratio), normalise and pad ``images``; scale the targets' boxes alike.

        Args:
            images: Tensor[3, H, W] each, uint8 or float in [0, 1].
            targets: optional, boxes in the images' pixels.
            input_size: ``(min_size, max_size)`` for this call instead of the config's
                (multi-scale training draws one per batch).
        """
        _check_images(images)
        min_size, max_size = input_size or (self.min_size, self.max_size)
        resized, sizes, scales, originals = [], [], [], []
        for image in images:
            height, width = image.shape[-2:]
            new_height, new_width = fit_size(height, width, min_size, max_size)
            image = image.to(self.mean.device)
            image = image.float().div_(255) if image.dtype == torch.uint8 else image.float()
            image = resize_image(image, (new_height, new_width))
            resized.append((image - self.mean) / self.std)
            sizes.append((new_height, new_width))
            scales.append((new_width / width, new_height / height))
            originals.append((int(height), int(width)))
        if targets is not None:
            targets = [_scale_target(t, s) for t, s in zip(targets, scales)]
        return ImageBatch(self._pad(resized), sizes, scales, originals), targets

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
    def postprocess(detections: list[dict[str, Tensor]], batch: ImageBatch) -> list[dict[str, Tensor]]:
        """Map boxes (clipped) and per-edge pixel uncertainties back to original image pixels."""
        for detection, scale, original in zip(detections, batch.scales, batch.original_sizes):
            detection["boxes"] = to_original_pixels(detection["boxes"], scale, original)
            if scale != (1.0, 1.0):
                per_edge = detection["boxes"].new_tensor([scale[0], scale[1], scale[0], scale[1]])
                for key in ("edge_std", "bin_size"):
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
                raise ValueError(
                    f"images[{index}] is float with values in [{low.item():.4g}, {high.item():.4g}]; "
                    "float images must be in [0, 1] (divide 0-255 values by 255, or pass uint8), "
                    "not normalised: the model normalises them itself"
                )
