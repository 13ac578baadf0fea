"""A seeded synthetic detection dataset written to disk in COCO format.

Classes are simple shapes (:data:`gfocal.data.render.SHAPES`) with a hue per
class, on noise/gradient/clutter backgrounds. A class named by its shape alone
(``"ring"``) draws each object's texture at random; one named ``"shape/texture"``
(``"ring/stripes"``, textures from :data:`gfocal.data.render.TEXTURES`) always
has that texture, so shapes x textures make many classes. Sizes are drawn
log-uniformly between ``size_range`` (tiny to large). Some objects have
blurred edges, some one edge hidden by an occluder; every annotation records
it as ``"ambiguous_edges": {"left"|"top"|"right"|"bottom": "blur"|"occluded"|None}``
(the box stays the full, amodal extent; ``"visible_box"`` is the unoccluded
part), which is what ambiguity analysis ranks against. Each image draws from
its own generator seeded by ``(seed, split, index)``: the output is the same
for a seed, whatever the number of images.
"""

from __future__ import annotations

import dataclasses
import io
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from gfocal.data.render import (
    BACKGROUNDS,
    EDGES,
    SHAPES,
    TEXTURES,
    background,
    blur_edges,
    class_colour,
    shape_mask,
    texture,
)
from gfocal.fileio import atomic_write_bytes, atomic_write_json

__all__ = [
    "SyntheticConfig",
    "PRESETS",
    "class_look",
    "make_synthetic_dataset",
    "make_synthetic_splits",
    "render_image",
]


def class_look(name: str) -> tuple[str, str | None]:
    """The shape and the texture of class ``name``: ``"ring"`` is ``("ring", None)`` (any texture),
    ``"ring/stripes"`` is ``("ring", "stripes")``.

    Raises:
        ValueError: an unknown shape or texture; the message lists the known ones.
    """
    shape, _, kind = name.partition("/")
    if shape not in SHAPES or (kind not in TEXTURES and "/" in name):
        raise ValueError(
            f"synthetic class {name!r}: a class is SHAPE or SHAPE/TEXTURE, with SHAPE one of "
            f"{', '.join(SHAPES)} and TEXTURE one of {', '.join(TEXTURES)}"
        )
    return shape, kind or None


def _check_classes(classes: tuple[str, ...]) -> None:
    """Class names must be known, distinct, and never tell apart objects that could look the same."""
    if not classes:
        raise ValueError("classes must name at least one class")
    looks = [class_look(name) for name in classes]
    repeated = sorted({name for name in classes if classes.count(name) > 1})
    any_texture = {shape for shape, kind in looks if kind is None}
    overlapping = sorted(name for name, (shape, kind) in zip(classes, looks) if kind and shape in any_texture)
    if repeated:
        raise ValueError(f"synthetic classes {list(classes)}: {repeated} named more than once")
    if overlapping:
        raise ValueError(
            f"synthetic classes {list(classes)}: {overlapping} overlap the class of their bare shape (any "
            "texture); name a shape alone or with textures, not both"
        )


@dataclass(frozen=True)
class SyntheticConfig:
    """Knobs of the generator (a preset is one of these; override fields by keyword).

    Attributes:
        num_images: images per split.
        image_size: ``(height, width)`` in pixels.
        objects_per_image: ``(lo, hi)`` inclusive; fewer when they do not fit.
        size_range: ``(lo, hi)`` of the longer box side in pixels, log-uniform.
        blur_fraction: fraction of objects with 1, 2 or 4 blurred edges.
        occlusion_fraction: fraction of objects with one edge occluded.
        blur_sigma: ``(lo, hi)`` Gaussian sigma of the blur, in pixels.
        classes: class names, ``"shape"`` (any texture) or ``"shape/texture"``; label i is ``classes[i]``.
        backgrounds: background kinds drawn from.
        clutter: random lines/blobs drawn on a clutter background.
        image_format: ``"png"`` or ``"jpg"``.
    """

    num_images: int = 200
    image_size: tuple[int, int] = (256, 256)
    objects_per_image: tuple[int, int] = (1, 6)
    size_range: tuple[int, int] = (8, 128)
    blur_fraction: float = 0.15
    occlusion_fraction: float = 0.15
    blur_sigma: tuple[float, float] = (1.0, 3.0)
    classes: tuple[str, ...] = ("rectangle", "ellipse", "triangle", "cross")
    backgrounds: tuple[str, ...] = BACKGROUNDS
    clutter: int = 8
    image_format: str = "png"

    def __post_init__(self) -> None:
        _check_classes(self.classes)
        if not 2 <= self.size_range[0] <= self.size_range[1] <= min(self.image_size):
            raise ValueError(
                f"size_range {self.size_range} must satisfy 2 <= lo <= hi <= min(image_size) = {min(self.image_size)}"
            )
        if self.image_format not in ("png", "jpg"):
            raise ValueError(f"image_format must be 'png' or 'jpg', got {self.image_format!r}")


PRESETS: dict[str, SyntheticConfig] = {
    "demo": SyntheticConfig(),
    "hard": SyntheticConfig(
        objects_per_image=(8, 20),
        size_range=(4, 64),
        blur_fraction=0.3,
        occlusion_fraction=0.3,
        blur_sigma=(1.0, 3.0),
        clutter=12,
    ),
    # The ambiguity experiments (benchmarks/ambiguity_auroc.py and its tests): 64 px images with objects big
    # enough that a few-pixel blur is a real, visible ambiguity, and about half of them ambiguous.
    "ambiguity": SyntheticConfig(
        image_size=(64, 64),
        objects_per_image=(1, 4),
        size_range=(20, 56),
        blur_fraction=0.3,
        occlusion_fraction=0.3,
        blur_sigma=(4.0, 8.0),
        classes=("rectangle", "ellipse"),
        clutter=4,
    ),
}


def _split_seed(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(split.encode()), index])


def _place(
    rng: np.random.Generator, config: SyntheticConfig, taken: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray] | None:
    """An integer box ``[x0, y0, x1, y1]`` and its reserved zone (box + halo), not touching earlier zones."""
    height, width = config.image_size
    lo, hi = config.size_range
    for _ in range(20):
        side = np.exp(rng.uniform(np.log(lo), np.log(hi + 1)))
        aspect = np.exp(rng.uniform(np.log(0.5), np.log(2.0)))
        w = int(np.clip(round(side * min(aspect, 1.0)), 2, width))
        h = int(np.clip(round(side / max(aspect, 1.0)), 2, height))
        x0, y0 = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
        box = np.array([x0, y0, x0 + w, y0 + h])
        halo = int(np.ceil(0.4 * max(w, h))) + 2
        zone = box + np.array([-halo, -halo, halo, halo])
        if all(zone[0] >= t[2] or zone[2] <= t[0] or zone[1] >= t[3] or zone[3] <= t[1] for t in taken):
            return box, zone
    return None


def _ambiguity(rng: np.random.Generator, config: SyntheticConfig) -> dict[str, str | None]:
    edges: dict[str, str | None] = dict.fromkeys(EDGES)
    if rng.random() < config.blur_fraction:
        for edge in rng.permutation(EDGES)[: int(rng.choice([1, 2, 4]))]:
            edges[str(edge)] = "blur"
    free = [e for e in EDGES if edges[e] is None]
    if free and rng.random() < config.occlusion_fraction:
        edges[free[int(rng.integers(len(free)))]] = "occluded"
    return edges


def _composite(canvas: np.ndarray, fill: np.ndarray, alpha: np.ndarray, x0: int, y0: int) -> None:
    """Alpha-blend ``fill`` [h, w, 3] onto ``canvas`` at (x0, y0), clipped to the canvas; in place."""
    height, width = canvas.shape[:2]
    h, w = alpha.shape
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x0 + w, width), min(y0 + h, height)
    a = alpha[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0, None]
    f = fill[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
    canvas[cy0:cy1, cx0:cx1] = a * f + (1 - a) * canvas[cy0:cy1, cx0:cx1]


def _occluder(rng: np.random.Generator, canvas: np.ndarray, box: np.ndarray, zone: np.ndarray, edge: str) -> np.ndarray:
    """Cover the ``edge`` side of ``box`` (30-60% of its extent, out to the zone); returns the visible box."""
    x0, y0, x1, y1 = (int(v) for v in box)
    depth = rng.uniform(0.3, 0.6)
    cover = {
        "left": (zone[0], zone[1], x0 + depth * (x1 - x0), zone[3]),
        "right": (x1 - depth * (x1 - x0), zone[1], zone[2], zone[3]),
        "top": (zone[0], zone[1], zone[2], y0 + depth * (y1 - y0)),
        "bottom": (zone[0], y1 - depth * (y1 - y0), zone[2], zone[3]),
    }[edge]
    cx0, cy0, cx1, cy1 = (int(round(v)) for v in cover)
    fill = texture(rng, cy1 - cy0, cx1 - cx0, rng.uniform(0, 255, 3).astype(np.float32))
    _composite(canvas, fill, np.ones((cy1 - cy0, cx1 - cx0), np.float32), cx0, cy0)
    visible = box.astype(np.float64).copy()
    index = {"left": 0, "top": 1, "right": 2, "bottom": 3}[edge]
    visible[index] = (cx1, cy1, cx0, cy0)[index]
    return visible


def render_image(config: SyntheticConfig, rng: np.random.Generator) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """One image (uint8 [H, W, 3]) and its objects: ``{"box", "label", "ambiguous_edges", "visible_box"}``."""
    height, width = config.image_size
    canvas = background(rng, height, width, config.backgrounds, config.clutter)
    count = int(rng.integers(config.objects_per_image[0], config.objects_per_image[1] + 1))
    taken: list[np.ndarray] = []
    objects = []
    for _ in range(count):
        placed = _place(rng, config, taken)
        if placed is None:
            break
        box, zone = placed
        taken.append(zone)
        label = int(rng.integers(len(config.classes)))
        edges = _ambiguity(rng, config)
        w, h = int(box[2] - box[0]), int(box[3] - box[1])
        blurred = tuple(e for e in EDGES if edges[e] == "blur")
        sigma = float(rng.uniform(*config.blur_sigma)) if blurred else 0.0
        margin = int(np.ceil(3 * sigma)) if blurred else 0
        shape, kind = class_look(config.classes[label])
        alpha = blur_edges(shape_mask(shape, w, h), blurred, sigma, margin)
        colour = class_colour(rng, label, len(config.classes))
        fill = texture(rng, h + 2 * margin, w + 2 * margin, colour, kind)  # kind None: drawn at random
        _composite(canvas, fill, alpha, int(box[0]) - margin, int(box[1]) - margin)
        objects.append({"box": box, "zone": zone, "label": label, "ambiguous_edges": edges, "blur_sigma": sigma})
    for obj in objects:
        occluded = [e for e in EDGES if obj["ambiguous_edges"][e] == "occluded"]
        visible = _occluder(rng, canvas, obj["box"], obj.pop("zone"), occluded[0]) if occluded else obj["box"]
        obj["visible_box"] = [float(v) for v in visible]
    return np.clip(canvas + 0.5, 0, 255).astype(np.uint8), objects


def _encode(image: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    if fmt == "png":
        Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
    else:
        Image.fromarray(image).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def _resolve(preset: str | SyntheticConfig, **overrides: Any) -> SyntheticConfig:
    if isinstance(preset, SyntheticConfig):
        config = preset
    elif preset in PRESETS:
        config = PRESETS[preset]
    else:
        raise ValueError(f"unknown preset {preset!r}; known: {sorted(PRESETS)}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if isinstance(overrides.get("image_size"), int):
        overrides["image_size"] = (overrides["image_size"], overrides["image_size"])
    return dataclasses.replace(config, **overrides)


def make_synthetic_dataset(
    out_dir: str | os.PathLike[str],
    num_images: int | None = None,
    image_size: int | tuple[int, int] | None = None,
    seed: int = 0,
    preset: str | SyntheticConfig = "demo",
    split: str = "train",
    **overrides: Any,
) -> Path:
    """Write ``<out_dir>/<split>.json`` (COCO) and its images under ``<out_dir>/<split>/``; returns the json path.

    Args:
        out_dir: output folder (created).
        num_images, image_size: override the preset (``image_size``: int for square, or ``(h, w)``).
        seed: the dataset is a function of ``(seed, split, config)``.
        preset: ``"demo"``, ``"hard"`` or a :class:`SyntheticConfig`.
        split: name of the split; different splits draw different images.
        **overrides: any other :class:`SyntheticConfig` field.
    """
    config = _resolve(preset, num_images=num_images, image_size=image_size, **overrides)
    out_dir = Path(out_dir)
    height, width = config.image_size
    images, annotations = [], []
    for index in range(config.num_images):
        pixels, objects = render_image(config, _split_seed(seed, split, index))
        file_name = f"{split}/{index:06d}.{config.image_format}"
        atomic_write_bytes(out_dir / file_name, _encode(pixels, config.image_format))
        images.append({"id": index + 1, "file_name": file_name, "width": width, "height": height})
        for obj in objects:
            x0, y0, x1, y1 = (float(v) for v in obj["box"])
            annotations.append({
                "id": len(annotations) + 1, "image_id": index + 1, "category_id": obj["label"] + 1,
                "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0), "iscrowd": 0,
                "ambiguous_edges": obj["ambiguous_edges"], "visible_box": obj["visible_box"], "blur_sigma": obj["blur_sigma"],
            })  # fmt: skip
    categories = [{"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(config.classes)]
    info = {"description": f"gfocal synthetic, seed={seed}, split={split}", "config": dataclasses.asdict(config)}
    coco = {"info": info, "licenses": [], "images": images, "annotations": annotations, "categories": categories}
    return atomic_write_json(out_dir / f"{split}.json", coco)


def make_synthetic_splits(
    out_dir: str | os.PathLike[str],
    preset: str | SyntheticConfig = "demo",
    seed: int = 0,
    num_train: int | None = None,
    num_val: int | None = None,
    **overrides: Any,
) -> tuple[Path, Path]:
    """Write a train and a val split (val defaults to a quarter of train); returns ``(train_json, val_json)``."""
    config = _resolve(preset, **overrides)
    num_train = num_train or config.num_images
    num_val = num_val or max(1, num_train // 4)
    train = make_synthetic_dataset(out_dir, num_train, seed=seed, preset=config, split="train")
    val = make_synthetic_dataset(out_dir, num_val, seed=seed, preset=config, split="val")
    return train, val
