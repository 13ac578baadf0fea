"""Drawing primitives for synthetic data: backgrounds, shape masks, textures, edge blur, occluders.

All arrays are numpy, float32 in 0..255 for colours ([H, W, 3]) and 0..1 for
masks ([H, W]); shapes are drawn supersampled with PIL and box-filtered down,
so edges are anti-aliased and every shape touches all four sides of its box
(the box is exact). No per-pixel Python loops.
"""

from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

__all__ = [
    "SHAPES",
    "TEXTURES",
    "BACKGROUNDS",
    "EDGES",
    "shape_mask",
    "texture",
    "background",
    "blur_edges",
    "class_colour",
]

SHAPES = ("rectangle", "ellipse", "triangle", "cross", "diamond", "ring")
TEXTURES = ("solid", "stripes", "checker", "noise")
BACKGROUNDS = ("noise", "gradient", "clutter")
EDGES = ("left", "top", "right", "bottom")
_SUPERSAMPLE = 4


def shape_mask(shape: str, width: int, height: int) -> np.ndarray:
    """float32 [height, width] coverage in 0..1 of ``shape`` filling a ``width x height`` box."""
    w, h = width * _SUPERSAMPLE, height * _SUPERSAMPLE
    canvas = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    if shape == "rectangle":
        draw.rectangle([0, 0, w - 1, h - 1], fill=255)
    elif shape == "ellipse":
        draw.ellipse([0, 0, w - 1, h - 1], fill=255)
    elif shape == "triangle":
        draw.polygon([(w / 2, 0), (w - 1, h - 1), (0, h - 1)], fill=255)
    elif shape == "cross":
        draw.rectangle([0, 0.35 * h, w - 1, 0.65 * h], fill=255)
        draw.rectangle([0.35 * w, 0, 0.65 * w, h - 1], fill=255)
    elif shape == "diamond":
        draw.polygon([(w / 2, 0), (w - 1, h / 2), (w / 2, h - 1), (0, h / 2)], fill=255)
    elif shape == "ring":
        draw.ellipse([0, 0, w - 1, h - 1], fill=255)
        draw.ellipse([0.28 * w, 0.28 * h, 0.72 * w, 0.72 * h], fill=0)
    else:
        raise ValueError(f"unknown shape {shape!r}; known: {SHAPES}")
    small = canvas.resize((width, height), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32) / 255.0


def class_colour(rng: np.random.Generator, label: int, num_classes: int) -> np.ndarray:
    """float32 [3] RGB 0..255: the class's hue (evenly spaced) with jitter, random saturation and value."""
    hue = (label / max(num_classes, 1) + rng.normal(0.0, 0.03)) % 1.0
    rgb = colorsys.hsv_to_rgb(hue, rng.uniform(0.5, 1.0), rng.uniform(0.55, 1.0))
    return np.asarray(rgb, dtype=np.float32) * 255.0


def texture(
    rng: np.random.Generator, height: int, width: int, colour: np.ndarray, kind: str | None = None
) -> np.ndarray:
    """float32 [height, width, 3] fill: ``colour`` modulated by a solid/stripes/checker/noise pattern."""
    kind = kind or TEXTURES[rng.integers(len(TEXTURES))]
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    if kind == "solid":
        pattern = np.ones((height, width), np.float32)
    elif kind == "stripes":
        angle, period = rng.uniform(0, np.pi), rng.uniform(3, 10)
        pattern = 0.75 + 0.25 * np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
    elif kind == "checker":
        cell = int(rng.integers(2, 7))
        pattern = np.where(((xx // cell) + (yy // cell)) % 2 == 0, 1.0, 0.6).astype(np.float32)
    elif kind == "noise":
        pattern = rng.uniform(0.7, 1.0, (height, width)).astype(np.float32)
    else:
        raise ValueError(f"unknown texture {kind!r}; known: {TEXTURES}")
    return np.clip(pattern[..., None] * colour[None, None, :], 0, 255)


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """float32 [height, width, 3] low-frequency colour noise: a coarse random grid upsampled bicubically."""
    coarse = rng.uniform(0, 255, (cells, cells, 3)).astype(np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)


def _gradient(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    t = xx * np.cos(angle) + yy * np.sin(angle)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1.0)
    return (a[None, None] * (1 - t[..., None]) + b[None, None] * t[..., None]).astype(np.float32)


def _clutter(rng: np.random.Generator, canvas: np.ndarray, count: int) -> np.ndarray:
    """Draw ``count`` random lines and irregular blobs (never one of the class shapes)."""
    height, width = canvas.shape[:2]
    image = Image.fromarray(canvas.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(count):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            pts = rng.uniform(0, 1, (2, 2)) * (width, height)
            draw.line([tuple(p) for p in pts], fill=colour, width=int(rng.integers(1, 4)))
        else:
            centre, radius = rng.uniform(0, 1, 2) * (width, height), rng.uniform(2, 0.06 * max(width, height))
            angles = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(5, 9))))
            radii = radius * rng.uniform(0.4, 1.0, len(angles))
            pts = centre + np.stack([np.cos(angles), np.sin(angles)], axis=1) * radii[:, None]
            draw.polygon([tuple(p) for p in pts], fill=colour)
    return np.asarray(image, dtype=np.float32)


def background(rng: np.random.Generator, height: int, width: int, kinds: tuple[str, ...], clutter: int) -> np.ndarray:
    """float32 [height, width, 3] background of a kind drawn from ``kinds``, plus fine sensor noise."""
    kind = kinds[rng.integers(len(kinds))]
    if kind == "noise":
        canvas = _smooth_noise(rng, height, width, int(rng.integers(3, 12)))
    elif kind == "gradient":
        canvas = _gradient(rng, height, width)
    elif kind == "clutter":
        canvas = _clutter(
            rng, 0.5 * _gradient(rng, height, width) + 0.5 * _smooth_noise(rng, height, width, 4), clutter
        )
    else:
        raise ValueError(f"unknown background {kind!r}; known: {BACKGROUNDS}")
    return np.clip(canvas + rng.normal(0, 4, canvas.shape), 0, 255).astype(np.float32)


def blur_edges(mask: np.ndarray, edges: tuple[str, ...], sigma: float, margin: int) -> np.ndarray:
    """Blur ``mask`` (float32 [h, w], the shape in its box) near the given edges only.

    Returns float32 [h + 2*margin, w + 2*margin]: the mask padded by ``margin``,
    equal to a Gaussian blur (``sigma`` pixels) of it near each listed edge,
    fading linearly to the sharp mask at the box's middle.
    """
    h, w = mask.shape
    padded = np.pad(mask, margin)
    if not edges:
        return padded
    blurred = Image.fromarray((padded * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(sigma))
    blurred = np.asarray(blurred, dtype=np.float32) / 255.0
    ys = (np.arange(h + 2 * margin, dtype=np.float32) - margin)[:, None]  # [H, 1] from the top edge
    xs = (np.arange(w + 2 * margin, dtype=np.float32) - margin)[None, :]  # [1, W] from the left edge
    ramps = {
        "left": 1 - xs / (0.5 * w),
        "right": 1 - (w - xs) / (0.5 * w),
        "top": 1 - ys / (0.5 * h),
        "bottom": 1 - (h - ys) / (0.5 * h),
    }
    weight = np.zeros_like(padded)
    for edge in edges:
        weight = np.maximum(weight, np.clip(ramps[edge], 0, 1))
    return (1 - weight) * padded + weight * blurred
