"""The real development set (tree crowns, ``../shared/datasets/make_trees_dev.py``) as benchmark splits.

    python benchmarks/real_data.py runs/small_data/data   # writes trees/, trees-val/, trees-shift/, trees-photo/

The shared script writes ``train/`` (49 tiles of 400 px, stride 300, from the top band of one large
photograph and one tile of another site) and ``test/`` (13 images from a separate band and a third site).
Three benchmark datasets are cut from them, each with ``train.json``, ``val.json`` and ``test.json``:

* ``trees-val``, for choices: the large photograph's tiles starting at x >= 1800 (its right 500 columns,
  12 tiles) are the held-out split (``val.json`` = ``test.json``); training keeps the tiles that end at
  x <= 1800 (the 6 tiles starting at x = 1500 overlap both and are left out) and the other site's tile.
  A recipe is chosen on this split.
* ``trees``, for reporting: all 49 training tiles train; ``test.json`` is the shared test split, which
  chooses nothing. ``val.json`` is the ``trees-val`` held-out split, a subset of training here: a run's own
  evaluation on it (progress, ``model_best``) steers nothing that is reported (final weights are scored).

* ``trees-shift``, for choices that must hold under the test split's kind of shift (another band of the
  photograph and another site): training keeps the large photograph's tiles that end at y <= 1300 (32 tiles;
  the other site's tile is left out); ``val.json`` (= ``test.json``) is the photograph's band of rows
  [1300, 1650) cut into 6 non-overlapping tiles (every box whose centre lies in a tile, clipped to it, as the
  shared script cuts its test band) and the other site's tile whole. On ``trees-val`` gfocal's lead over
  YOLOv8n did not carry over to the test split (docs/real_data.md); this split mirrors the test's structure
  inside the training data. The band's tiles are written from the photograph into ``trees-shift/images``;
  ``val_band.json`` and ``val_site.json`` hold the two kinds of shift apart (the band's tiles; the other site's).

Whole photographs, for tiled prediction (``benchmarks/tiling_real.py``), go to ``trees-photo``:

* ``test.json``: the large photograph's test band (its rows y >= 1650, 2299 x 822 px) as one image, with
  every box whose centre lies in the band clipped to it: the boxes of the shared test tiles, but not cut
  at the tiles' borders. ``test_tiles.json``: the band's 12 test tiles (the shared test split without the
  other site's image), to compare the whole photograph's AP with the tiles'.
* ``val.json``: the ``trees-val`` held-out region (columns x >= 1800 of the top 1650 rows, 499 x 1650 px) as
  one image, with the boxes whose centre lies in it, clipped; ``val_tiles.json``: its tiles (``trees-val``'s
  ``val.json``, overlapping). Tiling and merge settings are chosen here, with a model trained on ``trees-val``.

Photographs and boxes are read from the wheel the shared script caches, with its own functions.

The photographs never enter the repository: they are written at run time from a PyPI wheel the shared
script downloads (its README forbids the one hidden photograph, which the script never reads).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

__all__ = [
    "SCRIPT",
    "SHIFT_Y",
    "VAL_X",
    "region_boxes",
    "shift_windows",
    "split_tiles",
    "write_photographs",
    "write_shifted",
    "write_trees",
]

#: The shared dataset script, beside the project's checkout.
SCRIPT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "make_trees_dev.py"
#: Tiles of the large photograph starting at or right of this x are the validation split.
VAL_X = 1800
_BIG = "2019_YELL_2_528000_4978000_image_crop2"
#: The large photograph's rows from here down are the test band (the shared script's ``SPLIT_Y``).
TEST_Y = 1650
PHOTO = "trees-photo"
#: ``trees-shift`` trains on the large photograph's tiles ending at or above this row and validates on the
#: band of rows [SHIFT_Y, TEST_Y) (see the module docstring).
SHIFT_Y = 1300
SHIFT = "trees-shift"
#: The other site's one training tile, held out by ``trees-shift``.
_OTHER_SITE = "SOAP_061"


def split_tiles(coco: dict[str, Any]) -> tuple[list[int], list[int]]:
    """Image ids of the training-for-choices tiles and of the validation tiles (see the module docstring)."""
    train, val = [], []
    for image in coco["images"]:
        x = image["tile_xy"][0]
        if image["source"] != f"{_BIG}.png":
            train.append(image["id"])
        elif x >= VAL_X:
            val.append(image["id"])
        elif x + image["width"] <= VAL_X:
            train.append(image["id"])
    return train, val


def _subset(coco: dict[str, Any], ids: list[int], images_dir: Path | None = None) -> dict[str, Any]:
    """The images ``ids`` of ``coco`` and their annotations, file names made absolute under ``images_dir``
    (None: they are already)."""
    keep = set(ids)
    images = [{**im, "file_name": str(images_dir / im["file_name"]) if images_dir else im["file_name"]}
              for im in coco["images"] if im["id"] in keep]  # fmt: skip
    annotations = [a for a in coco["annotations"] if a["image_id"] in keep]
    return {**coco, "images": images, "annotations": annotations}


def _write(path: Path, coco: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(coco))
    return path


def write_trees(root: Path, script: Path = SCRIPT) -> dict[str, dict[str, Path]]:
    """Write ``root/trees`` and ``root/trees-val`` (``{train,val,test}.json``); return their paths per dataset."""
    source = root / "trees-source"
    if not (source / "test" / "annotations.json").is_file():
        if not script.is_file():
            raise FileNotFoundError(f"the shared dataset script {script} is missing (it lives beside the checkout)")
        subprocess.run([sys.executable, str(script), str(source)], check=True, stdout=sys.stderr)
    train = json.loads((source / "train" / "annotations.json").read_text())
    test = json.loads((source / "test" / "annotations.json").read_text())
    fit_ids, val_ids = split_tiles(train)
    all_ids = [im["id"] for im in train["images"]]
    val = _subset(train, val_ids, source / "train")
    splits = {
        "trees-val": {"train": _subset(train, fit_ids, source / "train"), "val": val, "test": val},
        "trees": {
            "train": _subset(train, all_ids, source / "train"),
            "val": val,
            "test": _subset(test, [im["id"] for im in test["images"]], source / "test"),
        },
    }
    return {
        name: {split: _write(root / name / f"{split}.json", coco) for split, coco in parts.items()}
        for name, parts in splits.items()
    }


def region_boxes(boxes: np.ndarray, window: tuple[int, int, int, int]) -> np.ndarray:
    """The boxes (float [M, 4] xyxy) whose centre lies in ``window`` (x0, y0, x1, y1: ``[x0, x1) x [y0, y1)``),
    clipped to it, in its pixels: the shared script's rule for a band (``band``), on both axes.

    Returns:
        float [M', 4] xyxy, in the order of ``boxes``.
    """
    x0, y0, x1, y1 = window
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2  # [M, 2]
    inside = (centre >= (x0, y0)).all(1) & (centre < (x1, y1)).all(1)
    return (boxes[inside].clip((x0, y0, x0, y0), (x1, y1, x1, y1)) - (x0, y0, x0, y0)).reshape(-1, 4)


def _shared_script(script: Path) -> ModuleType:
    """The shared dataset script as a module (its ``wheel`` and ``annotated`` read the photographs; the
    latter skips the hidden one)."""
    if not script.is_file():
        raise FileNotFoundError(f"the shared dataset script {script} is missing (it lives beside the checkout)")
    spec = importlib.util.spec_from_file_location("make_trees_dev", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cache() -> Path:
    """The shared script's default wheel cache."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gfocal-datasets"


def _box_annotations(boxes: np.ndarray, image_id: int) -> list[dict[str, Any]]:
    """COCO annotations (class 1, ids from 1; renumber when merging) of one image's boxes (float [M, 4] xyxy)."""
    return [
        {"id": i, "image_id": image_id, "category_id": 1, "bbox": [x0, y0, x1 - x0, y1 - y0],
         "area": (x1 - x0) * (y1 - y0), "iscrowd": 0}
        for i, (x0, y0, x1, y1) in enumerate(boxes.tolist(), 1)
    ]  # fmt: skip


def _photo_coco(image: Any, boxes: np.ndarray, stem: str, window: tuple[int, int, int, int]) -> dict[str, Any]:
    """One whole image (a PIL crop) and its boxes as COCO, ``file_name`` relative to the json."""
    annotations = _box_annotations(boxes, image_id=1)
    width, height = image.size
    return {
        "info": {"description": f"tree crowns: {_BIG}.png, window {list(window)} (xyxy), one whole image"},
        "images": [{"id": 1, "file_name": f"images/{stem}.png", "width": width, "height": height,
                    "source": f"{_BIG}.png", "tile_xy": list(window[:2])}],
        "annotations": annotations,
        "categories": [{"id": 1, "name": "tree", "supercategory": "tree"}],
    }  # fmt: skip


def write_photographs(
    root: Path, tiles: dict[str, Path], script: Path = SCRIPT, cache: Path | None = None
) -> dict[str, Path]:
    """Write ``root/trees-photo`` (see the module docstring): the test band and the validation region of the
    large photograph as whole images with their boxes, and their tiles from ``tiles`` (``{"test": trees'
    test.json, "val": trees-val's val.json}``) as ``{split}_tiles.json``. Returns the paths by name."""
    shared = _shared_script(script)
    photograph = next((img, boxes) for name, img, boxes in shared.annotated(shared.wheel(str(cache or _cache())))
                      if name == _BIG)  # fmt: skip
    image, boxes = photograph
    width, height = image.size
    windows = {"test": (0, TEST_Y, width, height), "val": (VAL_X, 0, width, TEST_Y)}
    out, written = root / PHOTO, {}
    (out / "images").mkdir(parents=True, exist_ok=True)
    for split, window in windows.items():
        stem = f"{_BIG}_x{window[0]}_y{window[1]}_whole"
        crop = image.crop(window)
        crop.save(out / "images" / f"{stem}.png")
        written[split] = _write(out / f"{split}.json", _photo_coco(crop, region_boxes(boxes, window), stem, window))
        coco = json.loads(tiles[split].read_text())
        ids = [im["id"] for im in coco["images"] if im["source"] == f"{_BIG}.png"]
        written[f"{split}_tiles"] = _write(out / f"{split}_tiles.json", _subset(coco, ids, tiles[split].parent))
    return written


def shift_windows(width: int, columns: int = 6) -> list[tuple[int, int, int, int]]:
    """The ``trees-shift`` validation band's non-overlapping tiles (x0, y0, x1, y1), left to right."""
    edges = [round(width * i / columns) for i in range(columns + 1)]
    return [(edges[c], SHIFT_Y, edges[c + 1], TEST_Y) for c in range(columns)]


def write_shifted(root: Path, source: Path, script: Path = SCRIPT, cache: Path | None = None) -> dict[str, Path]:
    """Write ``root/trees-shift`` (see the module docstring) from the shared script's training tiles in
    ``source/train`` and the large photograph; return the paths of ``train``, ``val``, ``test``, ``val_band``
    and ``val_site``."""
    tiles = json.loads((source / "train" / "annotations.json").read_text())
    fit_ids = [im["id"] for im in tiles["images"]
               if im["source"] == f"{_BIG}.png" and im["tile_xy"][1] + im["height"] <= SHIFT_Y]  # fmt: skip
    site_ids = [im["id"] for im in tiles["images"] if im["source"] == f"{_OTHER_SITE}.png"]
    shared = _shared_script(script)
    image, boxes = next((img, b) for name, img, b in shared.annotated(shared.wheel(str(cache or _cache())))
                        if name == _BIG)  # fmt: skip
    out = root / SHIFT
    (out / "images").mkdir(parents=True, exist_ok=True)
    val = _subset(tiles, site_ids, source / "train")
    val["info"] = {"description": f"tree crowns: {_BIG}.png rows [{SHIFT_Y}, {TEST_Y}) as tiles, and "
                                  f"{_OTHER_SITE}.png whole"}  # fmt: skip
    band_ids = []
    for image_id, window in enumerate(shift_windows(image.size[0]), max(im["id"] for im in tiles["images"]) + 1):
        path = out / "images" / f"{_BIG}_x{window[0]}_y{window[1]}_shift.png"
        crop = image.crop(window)
        crop.save(path)
        val["images"].append({"id": image_id, "file_name": str(path), "width": crop.size[0], "height": crop.size[1],
                              "source": f"{_BIG}.png", "tile_xy": list(window[:2])})  # fmt: skip
        val["annotations"] += _box_annotations(region_boxes(boxes, window), image_id)
        band_ids.append(image_id)
    for index, annotation in enumerate(val["annotations"], 1):  # one numbering for the site's and the band's
        annotation["id"] = index
    return {
        "train": _write(out / "train.json", _subset(tiles, fit_ids, source / "train")),
        "val": _write(out / "val.json", val),
        "test": _write(out / "test.json", val),
        "val_band": _write(out / "val_band.json", _subset(val, band_ids)),
        "val_site": _write(out / "val_site.json", _subset(val, site_ids)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "root", type=Path, help="folder to write trees/, trees-val/, trees-shift/ and trees-photo/ into"
    )
    parser.add_argument("--script", type=Path, default=SCRIPT, help="the shared make_trees_dev.py")
    args = parser.parse_args()
    written = write_trees(args.root, args.script)
    written[SHIFT] = write_shifted(args.root, args.root / "trees-source", args.script)
    written[PHOTO] = write_photographs(args.root, {"test": written["trees"]["test"], "val": written["trees-val"]["val"]},
                                       args.script)  # fmt: skip
    print(json.dumps({name: {k: str(v) for k, v in parts.items()} for name, parts in written.items()}, indent=1))


if __name__ == "__main__":
    main()
