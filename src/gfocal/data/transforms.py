"""Detection augmentation with ``torchvision.transforms.v2``: boxes move with the image.

Resizing follows the model's rule and resampling (:mod:`gfocal.image_geometry`),
so the model's own resize of a pipeline output is the identity.

Pipelines take and return ``(image, target)`` where ``image`` is a
``tv_tensors.Image`` uint8 [3, H, W] and ``target`` a dict holding
``"boxes"``: ``tv_tensors.BoundingBoxes`` [M, 4] XYXY absolute pixels, and
per-box tensors ``"labels"`` int64 [M] and ``"ignore"`` bool [M] that are kept
in step when degenerate boxes are removed.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from gfocal.image_geometry import fit_size, mostly_outside

__all__ = [
    "Augmentation",
    "ResizeKeepRatio",
    "ScaleJitterCrop",
    "RandomHueRotation",
    "build_transforms",
    "PER_BOX_KEYS",
]

#: Target keys holding one entry per box; kept in step with "boxes".
PER_BOX_KEYS = ("labels", "ignore")


@dataclass(frozen=True)
class Augmentation:
    """Random training augmentation; the defaults are no augmentation but the flip.

    Attributes:
        scale_range: ``(lo, hi)``: zoom each image by a factor drawn uniformly from this range
            (relative to its fitted size), then crop or pad it back to the fitted size, so
            objects appear at many scales and positions while the network input keeps its size.
            None: no zoom.
        min_visible: a box a crop cuts to less than this fraction of its area is dropped
            (a sliver of an object teaches the wrong box).
        hflip, vflip: probabilities of a horizontal / vertical flip.
        color: colour jitter of every image, with these strengths:
        color_jitter: ``(brightness, contrast, saturation, hue)``: factors drawn in ``[1 - s, 1 + s]`` as
            torchvision's ``ColorJitter``; the hue turns by up to ``±hue`` turns, as
            :class:`RandomHueRotation`. The default is ultralytics' (brightness x[0.6, 1.4], saturation
            x[0.3, 1.7], hue ±0.015 turns, contrast kept).
        grayscale: with ``color``, the probability that an image becomes grey (R = G = B).
    """

    scale_range: tuple[float, float] | None = None
    min_visible: float = 0.2
    hflip: float = 0.5
    vflip: float = 0.0
    color: bool = False
    color_jitter: tuple[float, float, float, float] = (0.4, 0.0, 0.7, 0.015)
    grayscale: float = 0.0

    def __post_init__(self) -> None:
        if self.scale_range is not None and not 0 < self.scale_range[0] <= self.scale_range[1]:
            raise ValueError(f"scale_range must be (lo, hi) with 0 < lo <= hi, got {self.scale_range}")
        for name in ("min_visible", "hflip", "vflip", "grayscale"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")


class ResizeKeepRatio(v2.Transform):
    """The keep-ratio resize of :func:`gfocal.image_geometry.fit_size`, with the model's own resampling.

    Args:
        min_size, max_size: the model's input sizes (``ModelConfig.min_size``/``max_size``).
    """

    def __init__(self, min_size: int, max_size: int) -> None:
        super().__init__()
        self.min_size, self.max_size = min_size, max_size

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = v2.query_size(flat_inputs)
        return {"size": fit_size(height, width, self.min_size, self.max_size)}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return self._call_kernel(F.resize, inpt, list(params["size"]), antialias=True)

    # torchvision < 0.21 names
    _get_params = make_params
    _transform = transform


class ScaleJitterCrop(v2.Transform):
    """Zoom by a random factor, then crop or pad back to the fitted size (scale jitter at a fixed input size).

    The output has the size :func:`~gfocal.image_geometry.fit_size` gives the input, so the
    model's own resize leaves it alone. Zooming in crops a random window; zooming out places
    the image at a random position on a black canvas. Boxes move with the pixels; a box the
    crop leaves less than ``min_visible`` of is made empty, for ``SanitizeBoundingBoxes`` to drop.

    Args:
        min_size, max_size: the model's input sizes.
        scale_range: ``(lo, hi)`` zoom factors, drawn uniformly.
        min_visible: fraction of a box's (zoomed) area that must stay inside the output.
    """

    def __init__(
        self, min_size: int, max_size: int, scale_range: tuple[float, float], min_visible: float = 0.2
    ) -> None:
        super().__init__()
        self.min_size, self.max_size, self.scale_range, self.min_visible = min_size, max_size, scale_range, min_visible

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = v2.query_size(flat_inputs)
        out_h, out_w = fit_size(height, width, self.min_size, self.max_size)
        zoom = random.uniform(*self.scale_range)
        zoomed = (max(1, round(out_h * zoom)), max(1, round(out_w * zoom)))
        # Crop offset: inside the zoomed image when it is larger, negative (padding) when it is smaller.
        top = random.randint(min(0, zoomed[0] - out_h), max(0, zoomed[0] - out_h))
        left = random.randint(min(0, zoomed[1] - out_w), max(0, zoomed[1] - out_w))
        return {"zoomed": zoomed, "top": top, "left": left, "out": (out_h, out_w)}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        out_h, out_w = params["out"]
        resized = self._call_kernel(F.resize, inpt, list(params["zoomed"]), antialias=True)
        cropped = self._call_kernel(F.crop, resized, params["top"], params["left"], out_h, out_w)
        if isinstance(inpt, tv_tensors.BoundingBoxes):
            cropped = _empty_hidden_boxes(resized, cropped, (params["left"], params["top"]), self.min_visible)
        return cropped

    _get_params = make_params
    _transform = transform


def _empty_hidden_boxes(
    before: tv_tensors.BoundingBoxes, after: tv_tensors.BoundingBoxes, shift: tuple[int, int], min_visible: float
) -> tv_tensors.BoundingBoxes:
    """``after`` (``before`` cropped at offset ``shift`` = (left, top)) with the boxes the crop mostly hides collapsed."""
    left, top = shift
    moved = before.as_subclass(torch.Tensor) - before.new_tensor([left, top, left, top])  # [M, 4] not clamped
    hidden = mostly_outside(moved, after.canvas_size, min_visible)  # [M]
    shifted = after.as_subclass(torch.Tensor)
    collapsed = torch.where(hidden.unsqueeze(-1), shifted[:, :2].repeat(1, 2), shifted)
    return tv_tensors.wrap(collapsed, like=after)


def per_box_fields(inputs: Any) -> tuple[torch.Tensor, ...]:
    """``labels_getter`` for ``SanitizeBoundingBoxes``: every per-box tensor of the target."""
    target = inputs[1] if isinstance(inputs, tuple) else inputs
    return tuple(target[k] for k in PER_BOX_KEYS if k in target)


class RandomHueRotation(v2.Transform):
    """Turn every colour about the grey axis of RGB space by an angle drawn from ``±max_turns`` turns.

    The same hue jitter as ``ColorJitter(hue=...)`` for the small angles of augmentation, at a
    fraction of the cost: one 3 x 3 matrix per image instead of torchvision's RGB -> HSV -> RGB
    round trip, which took 20 of the 25 ms of ColorJitter on a 416 px image (1 CPU thread) and so
    most of the data loading of a training step. Greys stay grey and brightness
    (the mean of R, G, B) is kept. Only images change; boxes and labels pass through.
    """

    def __init__(self, max_turns: float) -> None:
        super().__init__()
        if not 0 <= max_turns <= 0.5:
            raise ValueError(f"max_turns must be in [0, 0.5], got {max_turns}")
        self.max_turns = max_turns

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return {"turns": random.uniform(-self.max_turns, self.max_turns)}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not isinstance(inpt, tv_tensors.Image):
            return inpt
        rotation = hue_rotation_matrix(params["turns"])
        turned = torch.einsum("ij,jhw->ihw", rotation, inpt.float())  # [3, H, W]
        if inpt.dtype == torch.uint8:
            turned = turned.round_().clamp_(0, 255)
        return tv_tensors.wrap(turned.to(inpt.dtype), like=inpt)


def hue_rotation_matrix(turns: float) -> torch.Tensor:
    """The 3 x 3 rotation of RGB vectors by ``turns`` full turns about the axis (1, 1, 1) (Rodrigues' formula)."""
    angle = 2 * math.pi * turns
    axis = torch.full((3,), 1 / math.sqrt(3))
    cross = torch.tensor([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
    return math.cos(angle) * torch.eye(3) + (1 - math.cos(angle)) * torch.outer(axis, axis) + math.sin(angle) * cross


def build_transforms(
    min_size: int, max_size: int, augmentation: Augmentation | None = None, min_box_size: float = 1.0
) -> v2.Compose:
    """The detection pipeline: the model's keep-ratio resize, plus ``augmentation`` when training.

    Without augmentation (evaluation), the output is exactly what the model's own resize
    makes of the decoded file. With it: zoom-and-crop (``scale_range``) or the plain resize,
    flips, colour jitter. Both end by clamping boxes to the image and dropping those
    narrower or shorter than ``min_box_size`` pixels (``SanitizeBoundingBoxes``).
    """
    augmentation = augmentation or Augmentation(hflip=0.0)
    steps: list[v2.Transform] = []
    if augmentation.scale_range is not None:
        steps.append(ScaleJitterCrop(min_size, max_size, augmentation.scale_range, augmentation.min_visible))
    else:
        steps.append(ResizeKeepRatio(min_size, max_size))
    if augmentation.hflip > 0:
        steps.append(v2.RandomHorizontalFlip(p=augmentation.hflip))
    if augmentation.vflip > 0:
        steps.append(v2.RandomVerticalFlip(p=augmentation.vflip))
    if augmentation.color:
        brightness, contrast, saturation, hue = augmentation.color_jitter
        # A strength of 0 is no draw at all (ColorJitter skips it), so the default draws as before contrast existed.
        steps += [v2.ColorJitter(brightness=brightness, contrast=contrast, saturation=saturation)]
        if hue > 0:
            steps.append(RandomHueRotation(hue))
        if augmentation.grayscale > 0:
            steps.append(v2.RandomGrayscale(p=augmentation.grayscale))
    steps += [v2.ClampBoundingBoxes(), v2.SanitizeBoundingBoxes(min_size=min_box_size, labels_getter=per_box_fields)]
    return v2.Compose(steps)


def to_tv_target(
    boxes: torch.Tensor, labels: torch.Tensor, ignore: torch.Tensor, height: int, width: int
) -> dict[str, Any]:
    """Wrap plain tensors (boxes float32 [M, 4] xyxy) as a v2 target for an image of ``height x width``."""
    return {
        "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(height, width)),
        "labels": labels,
        "ignore": ignore,
    }
