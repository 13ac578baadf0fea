"""The ``cells`` dataset of ``benchmarks/small_data_sets.py``: rendered fluorescence micrographs of touching nuclei."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from small_data_canvas import Rendered, layout, overlap, smooth_noise


def _nucleus(rng: np.random.Generator, radius: float, mitotic: bool) -> tuple[np.ndarray, np.ndarray]:
    """One nucleus on its own patch: (intensity [p, p] >= 0, extent mask [p, p] bool)."""
    aspect = rng.uniform(1.0, 1.7 if not mitotic else 2.2)
    a, b = radius * np.sqrt(aspect), radius / np.sqrt(aspect)
    half = int(np.ceil(a * 1.3)) + 2
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float32)
    theta = rng.uniform(0, np.pi)
    u, v = xx * np.cos(theta) + yy * np.sin(theta), -xx * np.sin(theta) + yy * np.cos(theta)
    phi = np.arctan2(v / b, u / a)
    wobble = 1 + sum(
        rng.normal(0, 0.12 if mitotic else 0.04) * np.cos(k * phi + rng.uniform(0, 2 * np.pi)) for k in range(2, 6)
    )
    rho = np.sqrt((u / a) ** 2 + (v / b) ** 2) / wobble
    size = 2 * half + 1
    chromatin = smooth_noise(rng, size, size, max(radius / (8 if mitotic else 5), 0.7))
    body = np.clip((1 - rho) * radius / 1.5, 0, 1) * (1 - 0.35 * rho**2) * (1 + rng.uniform(0.15, 0.45) * chromatin)
    for _ in range(rng.poisson(1 if mitotic else 3)):  # chromocentres (bright) and nucleoli (dim)
        cy, cx = rng.uniform(-0.6, 0.6, size=2) * (b, a)
        spot = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (radius * rng.uniform(0.08, 0.18)) ** 2))
        body = body * (1 + spot * rng.choice([rng.uniform(0.5, 1.2), -0.35]))
    return np.clip(body, 0, None) * (1.8 if mitotic else 1.0), rho < 1


def _cytoplasm(rng: np.random.Generator, centres: np.ndarray, radii: np.ndarray, height: int, width: int) -> np.ndarray:
    """A second stain: fibrous cell bodies around the nuclei, [H, W] in [0, ~1]."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    near = np.zeros((height, width), np.float32)
    for (cy, cx), r in zip(centres, radii):
        near = np.maximum(near, np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (r * rng.uniform(1.8, 3.0)) ** 2)))
    side = int(np.hypot(height, width)) + 1
    fibres = ndi.gaussian_filter(rng.standard_normal((side, side)).astype(np.float32), (1.5, 4.0))
    top, left = (side - height) // 2, (side - width) // 2  # the centred rectangle lies inside the rotated square
    fibres = ndi.rotate(fibres, rng.uniform(0, 180), reshape=False, order=1)[top : top + height, left : left + width]
    fibres = (fibres - fibres.mean()) / (fibres.std() + 1e-6)
    return np.clip(near * (0.6 + 0.4 * fibres) + 0.3 * near * smooth_noise(rng, height, width, 8), 0, None)


def render_cells(rng: np.random.Generator, height: int, width: int) -> Rendered:
    base = np.exp(rng.uniform(np.log(9.5), np.log(32)))
    count = rng.integers(10, max(10, min(70, int(0.45 * height * width / (np.pi * base**2)))) + 1)
    radii = np.clip(base * np.exp(rng.normal(0, 0.18, count)), 6, 40)
    centres = layout(rng, radii, height, width, rng.uniform(0.7, 0.95))
    keep = ~np.isnan(centres[:, 0])
    centres, radii = centres[keep], radii[keep]
    nuclei = np.zeros((height, width), np.float32)
    focus_ramp = rng.uniform(0, 1.8) * np.clip(
        rng.uniform(-1, 2) + centres @ rng.normal(size=2) / max(height, width), 0, 1
    )
    boxes = []
    for (cy, cx), r, blur in zip(centres, radii, focus_ramp):
        mitotic = rng.random() < 0.06
        body, extent = _nucleus(rng, r * (0.65 if mitotic else 1.0), mitotic)
        brightness = np.exp(rng.normal(0, 0.3))
        if rng.random() < 0.2:  # out of the focal plane
            blur, brightness = blur + rng.uniform(1.5, 4.0), brightness * rng.uniform(0.5, 0.8)
        body = ndi.gaussian_filter(np.pad(body, int(3 * blur) + 1), blur) if blur > 0.3 else body
        _add(nuclei, body * brightness, round(cy) - body.shape[0] // 2, round(cx) - body.shape[1] // 2)
        ys, xs = np.nonzero(extent)
        box = (
            np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            + np.tile([round(cx), round(cy)], 2)
            - extent.shape[0] // 2
        )
        inside = np.clip(box, 0, [width, height, width, height])
        if min(inside[2:] - inside[:2]) >= 3 and np.prod(inside[2:] - inside[:2]) >= 0.35 * np.prod(box[2:] - box[:2]):
            boxes.append(inside.tolist())  # partly outside the frame: the part inside, when most of it is
    specks = np.zeros((height, width), np.float32)  # debris and dust: small, bright, unannotated
    count = rng.integers(5, 60)
    specks[rng.integers(0, height, count), rng.integers(0, width, count)] = rng.uniform(1, 8, count)
    nuclei += ndi.gaussian_filter(specks, rng.uniform(0.6, 1.5))
    nuclei += rng.uniform(0.02, 0.1) * np.clip(smooth_noise(rng, height, width, 60) + 1.5, 0, None)  # out-of-focus haze
    cytoplasm = _cytoplasm(rng, centres, radii, height, width)
    return _micrograph(rng, nuclei, cytoplasm), boxes


def _add(canvas: np.ndarray, patch: np.ndarray, top: int, left: int) -> None:
    windows = overlap(canvas.shape, patch.shape, top, left)
    if windows is not None:
        canvas[windows[0]] += patch[windows[1]]


def _micrograph(rng: np.random.Generator, nuclei: np.ndarray, cytoplasm: np.ndarray) -> np.ndarray:
    """Camera and display: illumination field, shot and read noise, auto-contrast, a colour merge; uint8 RGB."""
    height, width = nuclei.shape
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    cy, cx = rng.uniform(0.2, 0.8) * height, rng.uniform(0.2, 0.8) * width
    field = 1 - rng.uniform(0.2, 0.55) * ((yy - cy) ** 2 + (xx - cx) ** 2) / max(height, width) ** 2
    photons = rng.uniform(15, 250)
    channels = []
    for signal, level in ((nuclei, 1.0), (cytoplasm, rng.uniform(0.2, 0.6))):
        expected = (signal * level * field + rng.uniform(0.03, 0.12)) * photons
        counts = rng.poisson(expected).astype(np.float32) + rng.normal(0, 1.5, signal.shape).astype(np.float32)
        low, high = np.percentile(counts, [0.5, 99.95]) * [1.0, rng.uniform(0.8, 1.3)]
        channels.append(np.clip((counts - low) / (high - low), 0, 1) ** rng.uniform(0.7, 1.0))
    dapi, stain = channels
    mode = rng.choice(["grey", "blue", "merge"], p=[0.35, 0.35, 0.3])
    if mode == "grey":
        rgb = np.repeat(dapi[..., None], 3, axis=2)
    elif mode == "blue":
        rgb = dapi[..., None] * np.array([0.25, 0.55, 1.0])
    else:
        colour = np.array([[0.0, 1.0, 0.0], [1.0, 0.1, 0.1], [1.0, 0.2, 0.9]])[rng.integers(3)]
        rgb = dapi[..., None] * np.array([0.15, 0.35, 1.0]) + stain[..., None] * colour * rng.uniform(0.3, 0.7)
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)
