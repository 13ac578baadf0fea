"""``benchmarks/real_data.py``'s whole photographs: which boxes each region keeps and how they are cut, on a
synthetic photograph read through a stand-in for the shared script (nothing is downloaded)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import real_data
from PIL import Image

BIG = "2019_YELL_2_528000_4978000_image_crop2"
# Photograph pixels (the photograph is 1900 x 1700: test band y >= 1650, validation region x >= 1800, y < 1650).
BOXES = {
    "in the band": [100, 1660, 140, 1700],
    "centre above the band, reaching into it": [200, 1630, 240, 1660],
    "centre in the band, cut by its top": [300, 1640, 340, 1680],
    "centre in the validation region, cut by its left side": [1790, 100, 1830, 140],
    "centre left of the validation region, reaching into it": [1770, 200, 1810, 240],
    "centre in the band below the validation region": [1850, 1630, 1890, 1680],
    "centre in the validation region, cut by its bottom": [1850, 1600, 1890, 1660],
}
SCRIPT = """
import numpy as np
from PIL import Image

def wheel(cache):
    return "stand-in.whl"

def annotated(whl):
    yield "OTHER", Image.new("RGB", (20, 20)), np.zeros((0, 4))
    yield "{big}", Image.new("RGB", (1900, 1700), (40, 90, 40)), np.array({boxes}, dtype=np.float64)
"""


def test_region_keeps_the_boxes_whose_centre_lies_in_it_clipped_and_moved_into_it():
    boxes = np.array(list(BOXES.values()), dtype=np.float64)
    band = real_data.region_boxes(boxes, (0, 1650, 1900, 1700))
    np.testing.assert_array_equal(band, [[100, 10, 140, 50], [300, 0, 340, 30], [1850, 0, 1890, 30]])
    val = real_data.region_boxes(boxes, (1800, 0, 1900, 1650))
    np.testing.assert_array_equal(val, [[0, 100, 30, 140], [50, 1600, 90, 1650]])
    assert real_data.region_boxes(boxes, (0, 0, 10, 10)).shape == (0, 4)


def _tiles(path: Path, sources: list[str]) -> Path:
    """A tiles json with one box per image, its images from ``sources``."""
    images = [
        {"id": i, "file_name": f"/abs/{i}.png", "width": 9, "height": 9, "source": f"{s}.png", "tile_xy": [0, 0]}
        for i, s in enumerate(sources, 1)
    ]
    boxes = [{"id": i, "image_id": i, "category_id": 1, "bbox": [1, 1, 2, 2]} for i in range(1, len(sources) + 1)]
    path.write_text(json.dumps({"images": images, "annotations": boxes, "categories": [{"id": 1, "name": "tree"}]}))
    return path


@pytest.fixture
def written(tmp_path: Path) -> dict[str, Path]:
    script = tmp_path / "make_trees_dev.py"
    script.write_text(SCRIPT.format(big=BIG, boxes=list(BOXES.values())))
    tiles = {
        "test": _tiles(tmp_path / "test_tiles_in.json", [BIG, "OSBS_029", BIG]),
        "val": _tiles(tmp_path / "val_tiles_in.json", [BIG]),
    }
    return real_data.write_photographs(tmp_path / "root", tiles, script, cache=tmp_path / "cache")


def test_photographs_are_written_whole_with_their_boxes_as_coco(written: dict[str, Path]):
    test = json.loads(written["test"].read_text())
    (image,) = test["images"]
    assert (image["width"], image["height"], image["tile_xy"]) == (1900, 50, [0, 1650])
    with Image.open(written["test"].parent / image["file_name"]) as pixels:
        assert pixels.size == (1900, 50) and pixels.getpixel((5, 5)) == (40, 90, 40)
    assert [a["bbox"] for a in test["annotations"]] == [[100, 10, 40, 40], [300, 0, 40, 30], [1850, 0, 40, 30]]
    assert [a["area"] for a in test["annotations"]] == [1600, 1200, 1200]
    val = json.loads(written["val"].read_text())
    assert (val["images"][0]["width"], val["images"][0]["height"]) == (100, 1650)
    assert [a["bbox"] for a in val["annotations"]] == [[0, 100, 30, 40], [50, 1600, 40, 50]]


def test_the_tiles_compared_are_the_photographs_only(written: dict[str, Path]):
    tiles = json.loads(written["test_tiles"].read_text())
    assert [im["id"] for im in tiles["images"]] == [1, 3]  # the other site's image (2) is left out
    assert [a["image_id"] for a in tiles["annotations"]] == [1, 3]
    assert len(json.loads(written["val_tiles"].read_text())["images"]) == 1


def test_the_shifted_split_trains_above_the_band_and_validates_on_the_band_and_the_other_site(tmp_path: Path):
    script = tmp_path / "make_trees_dev.py"
    script.write_text(SCRIPT.format(big=BIG, boxes=list(BOXES.values())))
    train_dir = tmp_path / "source" / "train"
    train_dir.mkdir(parents=True)
    tiles = [(BIG, 0, 0), (BIG, 300, 900), (BIG, 300, 1200), ("SOAP_061", 0, 0)]  # source, x, y of 400 px tiles
    images = [{"id": i, "file_name": f"images/{i}.png", "width": 400, "height": 400, "source": f"{s}.png",
               "tile_xy": [x, y]} for i, (s, x, y) in enumerate(tiles, 1)]  # fmt: skip
    boxes = [{"id": i, "image_id": i, "category_id": 1, "bbox": [1, 1, 20, 20], "area": 400, "iscrowd": 0}
             for i in range(1, len(tiles) + 1)]  # fmt: skip
    coco = {"images": images, "annotations": boxes, "categories": [{"id": 1, "name": "tree"}]}
    (train_dir / "annotations.json").write_text(json.dumps(coco))

    written = real_data.write_shifted(tmp_path / "root", tmp_path / "source", script, cache=tmp_path / "cache")

    train = json.loads(written["train"].read_text())
    assert [im["tile_xy"] for im in train["images"]] == [[0, 0], [300, 900]]  # ends at y <= 1300, photograph only
    assert train["images"][0]["file_name"] == str(train_dir / "images" / "1.png")
    val = json.loads(written["val"].read_text())
    assert written["test"].read_text() == written["val"].read_text()
    assert val["images"][0]["source"] == "SOAP_061.png"  # the other site, whole, with its box
    band = val["images"][1:]
    assert [(im["tile_xy"], im["width"], im["height"]) for im in band] == [
        ([x0, 1300], x1 - x0, 350) for x0, _, x1, _ in real_data.shift_windows(1900)
    ]
    for image in band:
        with Image.open(image["file_name"]) as pixels:
            assert pixels.size == (image["width"], image["height"])
    by_image = {im["id"]: im["tile_xy"][0] for im in val["images"]}
    # Centre in the band: the box above the test band (its left tile) and the one cut by the band's bottom.
    assert [(by_image[a["image_id"]], a["bbox"]) for a in val["annotations"]] == [
        (0, [1, 1, 20, 20]),
        (0, [200, 330, 40, 20]),
        (1583, [267, 300, 40, 50]),
    ]
    assert [a["id"] for a in val["annotations"]] == [1, 2, 3]
    band_only = json.loads(written["val_band"].read_text())
    site_only = json.loads(written["val_site"].read_text())
    assert [im["id"] for im in band_only["images"]] == [im["id"] for im in band]
    assert [a["id"] for a in band_only["annotations"]] == [2, 3]
    assert [im["source"] for im in site_only["images"]] == ["SOAP_061.png"] and len(site_only["annotations"]) == 1
