"""The synthetic generator: deterministic for a seed, valid COCO, knobs do what they say."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gfocal.data import load_dataset
from gfocal.data.render import EDGES, SHAPES, blur_edges, shape_mask
from gfocal.data.synthetic import (
    PRESETS,
    SyntheticConfig,
    class_look,
    make_synthetic_dataset,
    make_synthetic_splits,
    render_image,
)

SMALL = {"num_images": 3, "image_size": 64, "size_range": (3, 40)}


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    make_synthetic_dataset(tmp_path / "a", seed=3, **SMALL)
    make_synthetic_dataset(tmp_path / "b", seed=3, **SMALL)
    make_synthetic_dataset(tmp_path / "c", seed=4, **SMALL)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert _files(tmp_path / "a")["train/000000.png"] != _files(tmp_path / "c")["train/000000.png"]


def test_output_loads_cleanly_with_ambiguity_records(tmp_path):
    path = make_synthetic_dataset(tmp_path, preset="hard", blur_fraction=0.5, occlusion_fraction=0.5, **SMALL)
    records = load_dataset(path, strict=True)
    assert records.class_names == list(PRESETS["hard"].classes) and len(records) == 3
    anns = [a for img in records.images for a in img.annotations]
    assert len(anns) >= 3 and not records.problems.warnings
    kinds = {a.extra["ambiguous_edges"][e] for a in anns for e in EDGES}
    assert kinds <= {None, "blur", "occluded"} and {"blur", "occluded"} <= kinds
    for a in anns:
        assert set(a.extra["ambiguous_edges"]) == set(EDGES)
        assert sum(v == "occluded" for v in a.extra["ambiguous_edges"].values()) <= 1
        vx0, vy0, vx1, vy1 = a.extra["visible_box"]
        assert a.box[0] <= vx0 < vx1 <= a.box[2] and a.box[1] <= vy0 < vy1 <= a.box[3]


@pytest.mark.parametrize("fraction", [0.0, 1.0])
def test_blur_and_occlusion_fractions(tmp_path, fraction):
    path = make_synthetic_dataset(
        tmp_path, blur_fraction=fraction, occlusion_fraction=fraction, objects_per_image=(3, 3), **SMALL
    )
    anns = json.loads(path.read_text())["annotations"]
    blurred = [any(v == "blur" for v in a["ambiguous_edges"].values()) for a in anns]
    assert all(b == bool(fraction) for b in blurred)


def test_splits_differ_and_sizes_follow_the_knobs(tmp_path):
    train, val = make_synthetic_splits(
        tmp_path, "demo", seed=0, num_train=4, num_val=2, image_size=(48, 80), size_range=(4, 40)
    )
    t, v = json.loads(train.read_text()), json.loads(val.read_text())
    assert len(t["images"]) == 4 and len(v["images"]) == 2 and t["images"][0]["width"] == 80
    assert (tmp_path / "train" / "000000.png").read_bytes() != (tmp_path / "val" / "000000.png").read_bytes()
    for a in t["annotations"]:
        x, y, w, h = a["bbox"]
        assert 0 <= x and x + w <= 80 and 0 <= y and y + h <= 48 and max(w, h) <= 41


def test_presets_and_bad_knobs():
    assert PRESETS["hard"].objects_per_image[0] > PRESETS["demo"].objects_per_image[1]
    assert PRESETS["hard"].size_range[0] <= 4
    with pytest.raises(ValueError, match="size_range"):
        make_synthetic_dataset("unused", image_size=32, size_range=(4, 64))


@pytest.mark.parametrize("shape", SHAPES)
def test_every_shape_touches_all_four_sides_of_its_box(shape):
    mask = shape_mask(shape, 20, 12) > 0.2
    assert mask[:, 0].any() and mask[:, -1].any() and mask[0].any() and mask[-1].any()


def test_blur_only_softens_the_listed_edge():
    mask = shape_mask("rectangle", 20, 20)
    out = blur_edges(mask, ("left",), sigma=2.0, margin=6)
    assert out[16, 6] < 0.9 and out[16, 4] > 0.05  # left edge soft, spills outside the box
    assert out[16, 25] == 1.0 and out[16, 26] == 0.0  # right edge still sharp


def test_a_shape_texture_class_always_has_its_texture(tmp_path):
    classes = ("rectangle/solid", "rectangle/checker", "ellipse")
    config = SyntheticConfig(
        image_size=(96, 96), size_range=(16, 40), classes=classes, blur_fraction=0.0, occlusion_fraction=0.0
    )
    colours = {name: set() for name in classes[:2]}  # distinct colours inside each object, per class
    for index in range(8):
        image, objects = render_image(config, np.random.default_rng(index))
        for obj in objects:
            x0, y0, x1, y1 = (int(v) for v in obj["box"])
            inside = image[y0 + 1 : y1 - 1, x0 + 1 : x1 - 1].reshape(-1, 3)  # a rectangle fills its box
            if obj["label"] < 2:
                colours[classes[obj["label"]]].add(len(np.unique(inside, axis=0)))
    assert colours["rectangle/solid"] == {1} and colours["rectangle/checker"] == {2}
    path = make_synthetic_dataset(tmp_path, num_images=2, image_size=64, size_range=(8, 30), classes=classes)
    assert [c["name"] for c in json.loads(path.read_text())["categories"]] == list(classes)


def test_class_names_are_checked_with_the_known_shapes_and_textures():
    assert class_look("ring") == ("ring", None) and class_look("ring/stripes") == ("ring", "stripes")
    for name in ("hexagon", "ring/plaid", "ring/", "ring/stripes/solid"):
        with pytest.raises(
            ValueError, match=r"a class is SHAPE or SHAPE/TEXTURE, with SHAPE one of rectangle.*TEXTURE one of solid"
        ):
            SyntheticConfig(classes=("ellipse", name))
    with pytest.raises(ValueError, match=r"\['ring/solid'\] named more than once"):
        SyntheticConfig(classes=("ring/solid", "ring/solid"))
    with pytest.raises(ValueError, match=r"\['ring/solid'\] overlap the class of their bare shape"):
        SyntheticConfig(classes=("ring", "ring/solid"))
    with pytest.raises(ValueError, match="at least one class"):
        SyntheticConfig(classes=())
