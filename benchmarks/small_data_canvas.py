"""Placing objects and making noise on the canvases of ``benchmarks/small_data_sets.py`` (coins and cells)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

Rendered = tuple[np.ndarray, list[list[float]]]  # uint8 [H, W, 3] image, xyxy boxes in pixels


def smooth_noise(rng: np.random.Generator, height: int, width: int, sigma: float) -> np.ndarray:
    """Zero-mean, unit-std Gaussian-filtered noise [H, W]."""
    noise = ndi.gaussian_filter(rng.standard_normal((height, width)).astype(np.float32), sigma, mode="wrap")
    return (noise - noise.mean()) / (noise.std() + 1e-6)


def overlap(
    canvas: tuple[int, ...], patch: tuple[int, ...], top: int, left: int
) -> tuple[tuple[slice, slice], ...] | None:
    """The (canvas, patch) windows where a patch placed at (top, left) lies on the canvas; None when nowhere."""
    y0, x0, y1, x1 = max(top, 0), max(left, 0), min(top + patch[0], canvas[0]), min(left + patch[1], canvas[1])
    if y1 <= y0 or x1 <= x0:
        return None
    return (slice(y0, y1), slice(x0, x1)), (slice(y0 - top, y1 - top), slice(x0 - left, x1 - left))


def layout(rng: np.random.Generator, radii: np.ndarray, height: int, width: int, closeness: float) -> np.ndarray:
    """Centres [K, 2] (y, x) in heaps or scattered, no two closer than ``closeness`` x the sum of their radii;
    objects that find no place are dropped (their centre is NaN)."""
    centres = np.full((len(radii), 2), np.nan)
    heaps = rng.uniform([0.15 * height, 0.15 * width], [0.85 * height, 0.85 * width], size=(rng.integers(1, 5), 2))
    spread = rng.uniform(0.08, 0.3) * max(height, width)
    scattered = rng.random() < 0.3
    for k, r in enumerate(radii):
        for _ in range(100):
            if scattered:
                c = rng.uniform([-0.3 * r, -0.3 * r], [height + 0.3 * r, width + 0.3 * r])
            else:
                c = heaps[rng.integers(len(heaps))] + rng.standard_normal(2) * spread
            placed = ~np.isnan(centres[:, 0])
            if np.all(np.hypot(*(centres[placed] - c).T) >= closeness * (radii[placed] + r)):
                centres[k] = c
                break
    return centres
