"""The real development set (tree crowns, ``../shared/datasets/make_trees_dev.py``) as benchmark splits.

    python benchmarks/real_data.py runs/small_data/data      # writes trees/ and trees-val/ there

The shared script writes ``train/`` (49 tiles of 400 px, stride 300, from the top band of one large
photograph and one tile of another site) and ``test/`` (13 images from a separate band and a third site).
Two benchmark datasets are cut from them, each with ``train.json``, ``val.json`` and ``test.json``:

* ``trees-val``, for choices: the large photograph's tiles starting at x >= 1800 (its right 500 columns,
  12 tiles) are the held-out split (``val.json`` = ``test.json``); training keeps the tiles that end at
  x <= 1800 (the 6 tiles starting at x = 1500 overlap both and are left out) and the other site's tile.
  A recipe is chosen on this split.
* ``trees``, for reporting: all 49 training tiles train; ``test.json`` is the shared test split, which
  chooses nothing. ``val.json`` is the ``trees-val`` held-out split, a subset of training here: a run's own
  evaluation on it (progress, ``model_best``) steers nothing that is reported (final weights are scored).

The photographs never enter the repository: they are written at run time from a PyPI wheel the shared
script downloads (its README forbids the one hidden photograph, which the script never reads).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["SCRIPT", "VAL_X", "write_trees", "split_tiles"]

#: The shared dataset script, beside the project's checkout.
SCRIPT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "make_trees_dev.py"
#: Tiles of the large photograph starting at or right of this x are the validation split.
VAL_X = 1800
_BIG = "2019_YELL_2_528000_4978000_image_crop2"


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


def _subset(coco: dict[str, Any], ids: list[int], images_dir: Path) -> dict[str, Any]:
    """The images ``ids`` of ``coco`` and their annotations, file names made absolute."""
    keep = set(ids)
    images = [{**im, "file_name": str(images_dir / im["file_name"])} for im in coco["images"] if im["id"] in keep]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path, help="folder to write trees/ and trees-val/ into")
    parser.add_argument("--script", type=Path, default=SCRIPT, help="the shared make_trees_dev.py")
    args = parser.parse_args()
    written = write_trees(args.root, args.script)
    print(json.dumps({name: {k: str(v) for k, v in parts.items()} for name, parts in written.items()}, indent=1))


if __name__ == "__main__":
    main()
