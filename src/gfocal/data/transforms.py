"""Detection augmentation with ``torchvision.transforms.v2``: boxes move with the image.

Pipelines take and return ``(image, target)`` where ``image`` is a
``tv_tensors.Image`` uint8 [3, H, W] and ``target`` a dict holding
``"boxes"``: ``tv_tensors.BoundingBoxes`` [M, 4] XYXY absolute pixels, and
per-box tensors ``"labels"`` int64 [M] and ``"ignore"`` bool [M] that are kept
in step when degenerate boxes are removed.
"""

from __future__ import annotations

import math
import random
from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

__all__ = ["ResizeKeepRatio", "build_transforms", "keep_ratio_size", "PER_BOX_KEYS"]

#: Target keys holding one entry per box; kept in step with "boxes".
PER_BOX_KEYS = ("labels", "ignore")


def keep_ratio_size(height: int, width: int, max_size: int, min_size: int | None = None) -> tuple[int, int]:
    """Output ``(h, w)`` of a keep-ratio resize.

    Without ``min_size`` the longer side becomes ``max_size``; with it, the
    shorter side becomes ``min_size`` unless that makes the longer side exceed
    ``max_size`` (torchvision's ``GeneralizedRCNNTransform`` rule, 800/1333).
    """
    scale = max_size / max(height, width)
    if min_size is not None:
        scale = min(min_size / min(height, width), scale)
    return max(1, round(height * scale)), max(1, round(width * scale))


class ResizeKeepRatio(v2.Transform):
    """Keep-ratio resize (see :func:`keep_ratio_size`), optionally multi-scale.

    Args:
        max_size: cap on the longer side, in pixels.
        min_size: target shorter side, or None to fit the longer side to ``max_size``.
        multiscale: ``(lo, hi)``: per call, the size that drives the resize (``min_size``
            when given, else ``max_size``) is drawn uniformly from ``lo..hi``
            rounded to a multiple of 32, as in multi-scale training.
    """

    def __init__(self, max_size: int, min_size: int | None = None, multiscale: tuple[int, int] | None = None) -> None:
        super().__init__()
        if multiscale is not None and not 0 < multiscale[0] <= multiscale[1]:
            raise ValueError(f"multiscale must be (lo, hi) with 0 < lo <= hi, got {multiscale}")
        self.max_size, self.min_size, self.multiscale = max_size, min_size, multiscale

    def _sizes(self) -> tuple[int, int | None]:
        if self.multiscale is None:
            return self.max_size, self.min_size
        lo, hi = self.multiscale
        drawn = min(max(32 * round(random.uniform(lo, hi) / 32), lo), hi)
        if self.min_size is None:
            return drawn, None
        return max(self.max_size, math.ceil(drawn * self.max_size / self.min_size)), drawn

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = v2.query_size(flat_inputs)
        max_size, min_size = self._sizes()
        return {"size": keep_ratio_size(height, width, max_size, min_size)}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return self._call_kernel(F.resize, inpt, params["size"], antialias=True)

    # torchvision < 0.21 names
    _get_params = make_params
    _transform = transform


def per_box_fields(inputs: Any) -> tuple[torch.Tensor, ...]:
    """``labels_getter`` for ``SanitizeBoundingBoxes``: every per-box tensor of the target."""
    target = inputs[1] if isinstance(inputs, tuple) else inputs
    return tuple(target[k] for k in PER_BOX_KEYS if k in target)


def build_transforms(
    train: bool,
    max_size: int,
    min_size: int | None = None,
    multiscale: tuple[int, int] | None = None,
    hflip: float = 0.5,
    photometric: bool = False,
    min_box_size: float = 1.0,
) -> v2.Compose:
    """The standard detection pipeline.

    Train: keep-ratio resize (multi-scale if asked), horizontal flip with
    probability ``hflip``, optional photometric jitter (brightness, contrast,
    saturation ±25%, applied with probability 0.8). Eval: the resize only.
    Both end by clamping boxes to the image and dropping those narrower or
    shorter than ``min_box_size`` pixels (``SanitizeBoundingBoxes``).
    """
    steps: list[v2.Transform] = [ResizeKeepRatio(max_size, min_size, multiscale if train else None)]
    if train and hflip > 0:
        steps.append(v2.RandomHorizontalFlip(p=hflip))
    if train and photometric:
        steps.append(v2.RandomApply([v2.ColorJitter(brightness=0.25, contrast=0.25, saturation=0.25)], p=0.8))
    steps += [v2.ClampBoundingBoxes(), v2.SanitizeBoundingBoxes(min_size=min_box_size, labels_getter=per_box_fields)]
    return v2.Compose(steps)


def to_tv_target(boxes: torch.Tensor, labels: torch.Tensor, ignore: torch.Tensor, height: int, width: int) -> dict[str, Any]:
    """Wrap plain tensors (boxes float32 [M, 4] xyxy) as a v2 target for an image of ``height x width``."""
    return {
        "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(height, width)),
        "labels": labels,
        "ignore": ignore,
    }
