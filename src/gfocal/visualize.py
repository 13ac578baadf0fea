"""Drawing detections and ground truth on images (PIL only), for ``gfocal predict``, the demo and the trackers."""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

__all__ = ["class_colour", "draw_detections", "draw_ground_truth"]


def class_colour(label: int) -> tuple[int, int, int]:
    """A distinct, stable colour per class (golden-ratio hue steps)."""
    red, green, blue = colorsys.hsv_to_rgb((label * 0.618033988749895) % 1.0, 0.85, 0.95)
    return int(red * 255), int(green * 255), int(blue * 255)


def draw_detections(
    image: torch.Tensor | np.ndarray | Image.Image,
    boxes: torch.Tensor,
    labels: torch.Tensor,
    scores: torch.Tensor | None = None,
    class_names: Sequence[str] | None = None,
    line_width: int = 2,
) -> Image.Image:
    """Boxes with ``name score`` captions on a copy of the image.

    Args:
        image: uint8 RGB as Tensor[3, H, W], array [H, W, 3], or a PIL image.
        boxes (Tensor[K, 4]): xyxy in the image's pixels.
        labels (Tensor[K]): class indices; scores (Tensor[K] | None).
    """
    if isinstance(image, torch.Tensor):
        image = Image.fromarray(image.permute(1, 2, 0).cpu().numpy())
    elif isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    canvas = image.convert("RGB")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    values = scores.tolist() if scores is not None else None  # formatting a tensor element costs 0.3 ms
    for index, (box, label) in enumerate(zip(boxes.tolist(), labels.tolist())):
        colour = class_colour(label)
        draw.rectangle(box, outline=colour, width=line_width)
        name = class_names[label] if class_names is not None else str(label)
        caption = name if values is None else f"{name} {values[index]:.2f}"
        left, top, right, bottom = draw.textbbox((box[0], box[1]), caption, font=font)
        # Caption above the box, or just inside it when the box touches the top edge.
        lift = bottom - top + 2 if top - (bottom - top + 2) >= 0 else -line_width
        draw.rectangle((left, top - lift, right + 2, bottom - lift), fill=colour)
        draw.text((box[0] + 1, box[1] - lift), caption, fill=(0, 0, 0), font=font)
    return canvas


def draw_ground_truth(image: Image.Image, boxes: torch.Tensor) -> Image.Image:
    """Ground-truth boxes on a copy of the image: thin white outlines in a dark rim, without captions, so the
    class-coloured detections that :func:`draw_detections` draws over them stay the ones read.

    Args:
        image: a PIL image.
        boxes (Tensor[M, 4]): xyxy in the image's pixels.
    """
    canvas = image.convert("RGB")  # a copy, whatever the mode
    draw = ImageDraw.Draw(canvas)
    for box in boxes.tolist():
        draw.rectangle(box, outline=(0, 0, 0), width=3)  # the rim keeps white visible on bright images
        draw.rectangle(box, outline=(255, 255, 255), width=1)
    return canvas
