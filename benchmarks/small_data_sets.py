"""Two small, photo-like, one-class detection datasets for ``benchmarks/small_data.py``.

    pip install scikit-image     # a benchmark requirement only, not a gfocal dependency
    python benchmarks/small_data_sets.py --out runs/small_data/data [--seed 0] \
        [--sheet docs/images/small_data_examples.png]

Writes ``OUT/<name>/{train,val,test}.json`` (COCO, one class) with the JPEGs
under ``OUT/<name>/<split>/``: 100 train, 20 val and 30 test images of
400x400, 400x300, 300x400 or 400x352 px, like a user's set of a few dozen
photographs of many small touching objects. Seeded and deterministic; each
image has its own random stream (seed, dataset, split, index). With seed 0:

- ``coins``: the 24 real coins of scikit-image's ``coins()`` photograph,
  segmented (watershed on the Sobel map) and cut out, pasted 8-40 to an image
  at 12-96 px (the size of an image's coins varies around its own scale),
  rotated and tinted (copper, silver, gold, bronze), with soft shadows, in
  heaps where they touch and overlap slightly, onto crops of the photographs
  and textures bundled with scikit-image (brick, grass, gravel, a wooden
  table, a saucer, fur, tissue, a spacesuit...), among unannotated look-alikes
  (discs and washers cut from other photos, pebbles, printed paper scraps,
  some lying over coins), with uneven light, blur, noise and JPEG. A box is
  tight around the coin's visible pixels (a coin less than 40% visible has
  none). train/val/test: 1,535 / 360 / 424 boxes, 13 / 18 / 12 a median
  image, median box side (sqrt of area) 34 / 31 / 36 px, 10-90% 19-65 px.
- ``cells``: rendered fluorescence micrographs of nuclei, 10-70 to an image,
  12-80 px, in colonies where they touch and overlap, with chromatin texture,
  bright chromocentres and dim nucleoli, condensed mitotic nuclei,
  out-of-focus nuclei and a focus ramp, a fibrous cytoplasm stain, debris,
  haze, uneven illumination, shot and read noise and auto-contrast; shown as
  grey, blue or two-colour merges. A box is the nucleus's extent, as an
  annotator would draw it on a blurred nucleus too; one mostly outside the
  frame has none. train/val/test: 2,589 / 517 / 817 boxes, 23 / 23 / 24 a
  median image, median box side 30 px, 10-90% 18-52 px.

Only images bundled inside scikit-image's wheel are used (none that needs a
download).
"""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage as ndi
from small_data_canvas import Rendered, layout, overlap, smooth_noise
from small_data_cells import render_cells

SPLITS = {"train": 100, "val": 20, "test": 30}
SIZES = ((400, 400), (300, 400), (400, 300), (352, 400))  # (height, width)
# scikit-image's bundled photographs used as backgrounds: (name, crop box as fractions or None).
BACKGROUNDS = (
    ("brick", None),
    ("grass", None),
    ("gravel", None),
    ("coffee", (0.0, 0.0, 1.0, 0.45)),
    ("coffee", None),
    ("chelsea", None),
    ("immunohistochemistry", None),
    ("astronaut", None),
    ("camera", (0.0, 0.55, 1.0, 1.0)),
    ("moon", None),
)
METALS = np.array([[0.95, 0.62, 0.42], [0.92, 0.93, 0.96], [1.0, 0.84, 0.48], [0.78, 0.62, 0.40], [0.70, 0.70, 0.66]])


# -- photographs and their cut-outs ---------------------------------------------------------------------------------


def _photo(name: str) -> np.ndarray:
    """A bundled scikit-image photograph as float32 RGB [H, W, 3] in [0, 1]."""
    import skimage.data

    pixels = getattr(skimage.data, name)().astype(np.float32) / 255.0
    return np.repeat(pixels[..., None], 3, axis=2) if pixels.ndim == 2 else pixels[..., :3]


def _coin_cutouts() -> list[tuple[np.ndarray, np.ndarray]]:
    """The 24 coins of ``skimage.data.coins()``: (grey [h, w], convex mask [h, w]) each.

    Sobel elevation plus watershed from sure-background / sure-coin markers, the
    region-based segmentation of scikit-image's coins tutorial.
    """
    import skimage.data
    from skimage import filters, measure, segmentation

    grey = skimage.data.coins().astype(np.float32) / 255.0
    markers = np.zeros(grey.shape, np.int32)
    markers[grey < 30 / 255] = 1
    markers[grey > 150 / 255] = 2
    coins = ndi.binary_fill_holes(segmentation.watershed(filters.sobel(grey), markers) == 2)
    coins = ndi.binary_opening(coins, iterations=2)
    regions = [r for r in measure.regionprops(ndi.label(coins)[0]) if r.area > 400]
    return [(grey[r.slice], r.image_convex) for r in regions]


def _resize(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of float32 [h, w] or [h, w, C]."""
    channels = pixels[..., None] if pixels.ndim == 2 else pixels
    out = np.stack(
        [
            np.asarray(Image.fromarray(channels[..., c]).resize((width, height), Image.BILINEAR))
            for c in range(channels.shape[2])
        ],
        axis=2,
    )
    return out[..., 0] if pixels.ndim == 2 else out


def _rotate(pixels: np.ndarray, degrees: float) -> np.ndarray:
    """Rotation about the centre with the canvas grown to fit; float32 [h, w] or [h, w, C]."""
    return ndi.rotate(pixels, degrees, axes=(1, 0), reshape=True, order=1, mode="constant", cval=0.0)


def _random_crop(
    rng: np.random.Generator, name: str, box: tuple[float, ...] | None, height: int, width: int
) -> np.ndarray:
    photo = _PHOTOS[name]
    if box is not None:
        h, w = photo.shape[:2]
        photo = photo[int(box[1] * h) : int(box[3] * h), int(box[0] * w) : int(box[2] * w)]
    h, w = photo.shape[:2]
    side = rng.uniform(0.5, 1.0) * min(h, w)
    ch, cw = int(min(h, side * height / max(height, width))), int(min(w, side * width / max(height, width)))
    top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    crop = photo[top : top + ch, left : left + cw]
    crop = np.rot90(crop, 2 * rng.integers(0, 2))[:, :: rng.choice([-1, 1])]
    return _resize(np.ascontiguousarray(crop), height, width)


def _photo_finish(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Uneven light, white balance, focus blur and sensor noise on float RGB; returns uint8 [H, W, 3]."""
    height, width = image.shape[:2]
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = ((xx - width / 2) * np.cos(angle) + (yy - height / 2) * np.sin(angle)) / max(height, width)
    vignette = ((xx - width / 2) ** 2 + (yy - height / 2) ** 2) / (max(height, width) / 2) ** 2
    light = 1.0 + rng.uniform(0.0, 0.6) * ramp - rng.uniform(0.0, 0.35) * vignette
    image = image * light[..., None] * rng.uniform(0.85, 1.15, size=3) * rng.uniform(0.75, 1.2)
    image = ndi.gaussian_filter(image, (rng.choice([0.3, 0.6, 1.0, 1.5], p=[0.4, 0.3, 0.2, 0.1]),) * 2 + (0,))
    image = image + rng.standard_normal(image.shape).astype(np.float32) * rng.uniform(0.005, 0.035)
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


# -- coins ----------------------------------------------------------------------------------------------------------


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    name, box = BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
    canvas = _random_crop(rng, name, box, height, width)
    if name in ("brick", "grass", "gravel", "moon", "camera"):  # grey photos: a coloured surface
        canvas = canvas * rng.uniform(0.55, 1.1, size=3)
    if rng.random() < 0.35:  # a second surface (a cloth, a sheet, a board) under part of the frame
        other, other_box = BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
        yy, xx = np.mgrid[0:height, 0:width]
        angle = rng.uniform(0, 2 * np.pi)
        edge = (xx - width / 2) * np.cos(angle) + (yy - height / 2) * np.sin(angle) - rng.uniform(-0.4, 0.4) * width
        mask = np.clip(edge / rng.uniform(0.7, 2.0) + 0.5, 0, 1).astype(np.float32)
        canvas = canvas * (1 - mask[..., None]) + _random_crop(rng, other, other_box, height, width) * mask[..., None]
    contrast = rng.uniform(0.5, 1.0)
    return canvas.mean() + (canvas - canvas.mean()) * contrast


def _disc(rng: np.random.Generator, diameter: int) -> tuple[np.ndarray, np.ndarray]:
    """A round look-alike (button, washer, bottle cap) cut from another photo: (rgb, alpha)."""
    name, box = BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
    rgb = _random_crop(rng, name, box, diameter, diameter) * rng.uniform(0.5, 1.3, size=3)
    yy, xx = (np.mgrid[0:diameter, 0:diameter] - (diameter - 1) / 2) / (diameter / 2)
    radius = np.sqrt(xx**2 + yy**2)
    alpha = np.clip((1 - radius) * diameter / 2, 0, 1)
    if rng.random() < 0.5:  # a hole: washer
        alpha *= np.clip((radius - rng.uniform(0.2, 0.45)) * diameter / 2, 0, 1)
    return np.clip(rgb, 0, 1), alpha


def _pebble_or_scrap(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """An irregular pebble (gravel texture) or a rotated paper scrap with print: (rgb, alpha)."""
    if rng.random() < 0.5:
        rgb = _random_crop(rng, "gravel", None, size, size) * rng.uniform(0.6, 1.2) * rng.uniform(0.85, 1.15, size=3)
        yy, xx = (np.mgrid[0:size, 0:size] - (size - 1) / 2) / (size / 2)
        wobble = 0.75 + 0.2 * smooth_noise(rng, size, size, size / 5)
        alpha = np.clip((wobble - np.sqrt((xx * rng.uniform(1, 1.8)) ** 2 + yy**2)) * size / 3, 0, 1)
        return np.clip(rgb, 0, 1), alpha
    h, w = size, int(size * rng.uniform(1.2, 2.5))
    paper = np.concatenate(
        [_random_crop(rng, str(rng.choice(["page", "text"])), None, h, w), np.ones((h, w, 1), np.float32)], axis=2
    )
    paper = _rotate(paper, rng.uniform(0, 360))
    return np.clip(paper[..., :3], 0, 1), np.clip(paper[..., 3], 0, 1)


def _coin(rng: np.random.Generator, cutouts: list, diameter: float) -> tuple[np.ndarray, np.ndarray]:
    """A coin cut-out rotated, resized to ``diameter`` px and tinted as metal, lit from one side: (rgb, alpha)."""
    grey, mask = cutouts[rng.integers(len(cutouts))]
    scale = diameter / max(mask.shape)
    stack = np.stack([grey * mask, mask.astype(np.float32)], axis=2)
    stack = _resize(stack, max(2, round(mask.shape[0] * scale)), max(2, round(mask.shape[1] * scale)))
    stack = _rotate(stack, rng.uniform(0, 360))  # after the resize: a coin keeps its diameter
    alpha = np.clip(stack[..., 1], 0, 1)
    grey = stack[..., 0] / np.maximum(alpha, 1e-3)
    h, w = grey.shape
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w) - 0.5
    angle = rng.uniform(0, 2 * np.pi)
    shade = 1 + rng.uniform(0, 0.5) * (xx * np.cos(angle) + yy * np.sin(angle))
    tint = METALS[rng.integers(len(METALS))] * rng.uniform(0.95, 1.05, size=3)
    grey = (grey - grey.mean()) * rng.uniform(0.7, 1.4) + grey.mean()
    rgb = np.clip(grey[..., None] * shade[..., None] * tint * rng.uniform(0.75, 1.25), 0, 1)
    return rgb.astype(np.float32), alpha


def _paste(
    canvas: np.ndarray,
    rgb: np.ndarray,
    alpha: np.ndarray,
    top: int,
    left: int,
    shadow: tuple[int, int, float, float] | None,
) -> tuple[slice, slice, np.ndarray] | None:
    """Alpha-blend ``rgb`` onto ``canvas`` at (top, left), after a soft shadow offset by (dy, dx);
    returns the canvas slices and the alpha visible inside them (None when off the canvas)."""
    if shadow is not None:
        dy, dx, sigma, opacity = shadow
        pad = int(3 * sigma) + 1
        soft = ndi.gaussian_filter(np.pad(alpha, pad), sigma) * opacity
        _blend(canvas, np.zeros((*soft.shape, 3), np.float32), soft, top + dy - pad, left + dx - pad)
    return _blend(canvas, rgb, alpha, top, left)


def _blend(
    canvas: np.ndarray, rgb: np.ndarray, alpha: np.ndarray, top: int, left: int
) -> tuple[slice, slice, np.ndarray] | None:
    windows = overlap(canvas.shape, alpha.shape, top, left)
    if windows is None:
        return None
    on_canvas, on_patch = windows
    a = alpha[on_patch][..., None]
    canvas[on_canvas] = canvas[on_canvas] * (1 - a) + rgb[on_patch] * a
    return (*on_canvas, a[..., 0])


def render_coins(rng: np.random.Generator, height: int, width: int) -> Rendered:
    canvas = _background(rng, height, width).astype(np.float32)
    light = rng.uniform(0, 2 * np.pi)
    shadow_dir = np.array([np.sin(light), np.cos(light)])
    base = np.exp(rng.uniform(np.log(20), np.log(84)))
    count = rng.integers(8, max(8, min(40, int(0.5 * height * width / base**2))) + 1)
    diameters = np.clip(base * np.exp(rng.normal(0, 0.25, count)), 12, 96)
    distractors = [
        _disc(rng, int(np.clip(base * rng.uniform(0.6, 1.4), 10, 90)))
        if rng.random() < 0.5
        else _pebble_or_scrap(rng, int(np.clip(base * rng.uniform(0.6, 1.6), 10, 100)))
        for _ in range(rng.integers(0, 9))
    ]
    sizes = np.concatenate([diameters, [max(a.shape) for _, a in distractors]]) / 2
    centres = layout(rng, sizes, height, width, rng.uniform(0.78, 0.95))
    owner = np.zeros((height, width), np.int32)  # 1 + index of the coin that shows at each pixel, 0 for none
    others = np.arange(len(diameters), len(sizes))
    on_top = rng.choice(others, int(len(others) * rng.uniform(0, 0.5)), replace=False)  # look-alikes lying over coins
    order = [*np.setdiff1d(others, on_top), *rng.permutation(np.concatenate([np.arange(len(diameters)), on_top]))]
    for k in order:
        if np.isnan(centres[k, 0]):
            continue
        rgb, alpha = _coin(rng, _CUTOUTS, diameters[k]) if k < len(diameters) else distractors[k - len(diameters)]
        top, left = int(centres[k, 0] - alpha.shape[0] / 2), int(centres[k, 1] - alpha.shape[1] / 2)
        offset = shadow_dir * sizes[k] * rng.uniform(0.1, 0.25)
        shown = _paste(
            canvas, rgb, alpha, top, left, (int(offset[0]), int(offset[1]), sizes[k] * 0.1 + 1, rng.uniform(0.3, 0.6))
        )
        if shown is not None:
            rows, cols, a = shown
            owner[rows, cols] = np.where(a > 0.5, k + 1 if k < len(diameters) else 0, owner[rows, cols])
    boxes = []
    for k, where in enumerate(ndi.find_objects(owner, max_label=len(diameters))):
        full = np.pi * (diameters[k] / 2) ** 2
        if where is not None and (owner[where] == k + 1).sum() >= 0.4 * full:
            boxes.append([where[1].start, where[0].start, where[1].stop, where[0].stop])
    return _photo_finish(rng, canvas), boxes


# -- writing --------------------------------------------------------------------------------------------------------

DATASETS: dict[str, tuple[int, str, Callable[[np.random.Generator, int, int], Rendered]]] = {
    "coins": (1, "coin", render_coins),
    "cells": (2, "nucleus", render_cells),
}
_PHOTOS: dict[str, np.ndarray] = {}
_CUTOUTS: list[tuple[np.ndarray, np.ndarray]] = []


def _load_sources() -> None:
    if not _PHOTOS:
        _PHOTOS.update({name: _photo(name) for name in {n for n, _ in BACKGROUNDS} | {"page", "text"}})
        _CUTOUTS.extend(_coin_cutouts())


def write_dataset(root: Path, name: str, seed: int = 0) -> dict[str, Path]:
    """Write ``root/<name>/<split>.json`` and ``root/<name>/<split>/*.jpg`` for each split; returns the json paths."""
    _load_sources()
    index, category, render = DATASETS[name]
    paths = {}
    for split_index, (split, count) in enumerate(SPLITS.items()):
        (root / name / split).mkdir(parents=True, exist_ok=True)
        images, annotations = [], []
        for i in range(count):
            rng = np.random.default_rng([seed, index, split_index, i])
            height, width = SIZES[rng.integers(len(SIZES))]
            pixels, boxes = render(rng, height, width)
            file_name = f"{split}/{i:04d}.jpg"
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, "JPEG", quality=int(rng.integers(60, 93)))
            (root / name / file_name).write_bytes(buffer.getvalue())
            images.append({"id": i + 1, "file_name": file_name, "width": width, "height": height})
            annotations += [
                {
                    "id": len(annotations) + 1,
                    "image_id": i + 1,
                    "category_id": 1,
                    "iscrowd": 0,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                }
                for x0, y0, x1, y1 in (map(float, b) for b in boxes)
            ]
        coco = {
            "info": {"description": f"gfocal small-data benchmark: {name} {split}, seed {seed}"},
            "images": images,
            "annotations": annotations,
            "categories": [{"id": 1, "name": category}],
        }
        paths[split] = root / name / f"{split}.json"
        paths[split].write_text(json.dumps(coco))
    return paths


def contact_sheet(json_paths: list[Path], per_set: int, tile: int = 200) -> Image.Image:
    """The first ``per_set`` images of each json with their boxes drawn, one row per json."""
    sheet = Image.new("RGB", (tile * per_set, tile * len(json_paths)), "white")
    for row, path in enumerate(json_paths):
        coco = json.loads(path.read_text())
        for col, image in enumerate(coco["images"][:per_set]):
            picture = Image.open(path.parent / image["file_name"]).convert("RGB")
            draw = ImageDraw.Draw(picture)
            for ann in coco["annotations"]:
                if ann["image_id"] == image["id"]:
                    x, y, w, h = ann["bbox"]
                    draw.rectangle((x, y, x + w - 1, y + h - 1), outline=(255, 230, 0))
            picture.thumbnail((tile, tile))
            sheet.paste(picture, (col * tile, row * tile))
    return sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="root folder; each dataset goes to OUT/<name>/")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--sheet",
        help="also save a PNG of 4 test images of each dataset with their boxes (docs/images/small_data_examples.png)",
    )
    args = parser.parse_args()
    paths = {name: write_dataset(Path(args.out), name, args.seed) for name in args.datasets}
    if args.sheet:
        sheet = contact_sheet([p["test"] for p in paths.values()], per_set=4)
        sheet.quantize(256, method=Image.Quantize.MEDIANCUT).save(args.sheet, optimize=True)  # 256 colours: small
    print(json.dumps({name: {split: str(path) for split, path in p.items()} for name, p in paths.items()}, indent=2))


if __name__ == "__main__":
    main()
