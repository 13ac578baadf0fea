"""The one owner of image geometry: the keep-ratio size rule, the resampling, and the way back to original pixels.

The model's input transform resizes every image it is given with these functions
(in float, so the numpy reference decoder of an exported model can reproduce it).
Evaluation and prediction hand it the decoded file, so ``gfocal eval`` and
``gfocal predict`` feed the network identical tensors. The training pipeline
resizes (and zooms and crops) in its worker processes with the same rule, so the
model's resize of a training image is the identity.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import box_area
from torchvision.transforms.v2 import functional as F

__all__ = ["fit_size", "resize_image", "clip_boxes", "mostly_outside", "to_original_pixels"]


def fit_size(height: int, width: int, min_size: int, max_size: int) -> tuple[int, int]:
    """Output ``(h, w)`` of the keep-ratio resize: shorter side to ``min_size``, longer side at most ``max_size``.

    torchvision's ``GeneralizedRCNNTransform`` rule (800/1333 for the paper's model); with
    ``min_size == max_size == S`` the longer side becomes S (a square S x S canvas holds the image).
    An image already of the output size maps to itself, so applying the rule twice resizes once.
    """
    scale = min(min_size / min(height, width), max_size / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize_image(image: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear, antialiased resize of ``image`` (Tensor[..., 3, H, W], uint8 or float) to ``size`` = (h, w).

    torchvision's kernel, as the data pipeline's ``v2`` resize uses; antialiased so that a
    reduced image does not alias (a plain bilinear reduction skips pixels). Returns the input
    when the size is unchanged.
    """
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return F.resize(image, list(size), antialias=True)


def clip_boxes(boxes: Tensor, size: tuple[int, int]) -> Tensor:
    """Boxes (Tensor[K, 4] xyxy pixels) clamped to an image of ``size`` = (h, w); a new tensor."""
    height, width = size
    upper = boxes.new_tensor([width, height, width, height])
    return torch.minimum(boxes.clamp_min(0), upper)


def mostly_outside(boxes: Tensor, size: tuple[int, int], min_visible: float) -> Tensor:
    """Tensor[K] bool: which boxes (Tensor[K, 4] xyxy) keep less than ``min_visible`` of their area, or less
    than a pixel of width or height, inside an image of ``size`` = (h, w) (after a crop moved them)."""
    visible = clip_boxes(boxes, size)
    too_thin = ((visible[:, 2:] - visible[:, :2]) < 1).any(-1)
    return too_thin | (box_area(visible) < min_visible * box_area(boxes))


def to_original_pixels(boxes: Tensor, scale_xy: tuple[float, float], original_size: tuple[int, int]) -> Tensor:
    """Boxes from a resized image (Tensor[K, 4] xyxy) back to the original image's pixels, clipped to it.

    Args:
        boxes: in the resized image's pixels.
        scale_xy: (sx, sy) resized pixels per original pixel.
        original_size: (h, w) of the original image.
    """
    scale_x, scale_y = scale_xy
    return clip_boxes(boxes / boxes.new_tensor([scale_x, scale_y, scale_x, scale_y]), original_size)
