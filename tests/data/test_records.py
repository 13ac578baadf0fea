"""DatasetRecords.require_boxes: a set with no box at all is refused, saying what validation dropped."""

from __future__ import annotations

import pytest

from gfocal.data import DatasetError, load_dataset
from support import files


def coco(tmp_path, annotations, images=2):
    for i in range(images):
        files.image(tmp_path / f"{i}.png")
    path = files.coco(
        tmp_path / "train.json",
        images=[{"id": i + 1, "file_name": f"{i}.png"} for i in range(images)],
        annotations=[{"id": k + 1, "category_id": 1, **a} for k, a in enumerate(annotations)],
    )
    return load_dataset(path, warn=False)


def test_boxes_in_some_images_and_negatives_elsewhere_are_fine(tmp_path):
    records = coco(tmp_path, [{"image_id": 1, "bbox": [2, 2, 8, 8]}], images=3)
    records.require_boxes("train on")
    assert records.problems.count("empty_image") == 2


@pytest.mark.parametrize(
    "annotations, images, message",
    [
        (
            [{"image_id": 9, "bbox": [2, 2, 8, 8]}] * 3,
            2,
            r"train\.json: no usable box to train on after validation \(2 images, none with a box\): 3 annotations pointing to "
            r"an unknown image \(skipped\)\. Example: .*train\.json, annotation id=1: image_id 9 is not in 'images'$",
        ),
        (
            [{"image_id": 9, "bbox": [2, 2, 8, 8]}, {"image_id": 1, "bbox": [2, 2, 0, 8]}],
            2,
            r"\(2 images, none with a box\): 1 degenerate boxes.*\(dropped\); 1 annotations pointing to an unknown image",
        ),
        (
            [{"image_id": 1, "bbox": [2, 2, 8, 8], "iscrowd": 1}],
            1,
            r"\(1 images, their 1 boxes all crowd/difficult\): crowd and difficult boxes are ignored",
        ),
        ([], 2, r"\(2 images, none with a box\): the dataset lists no boxes$"),
        ([], 0, r"\(0 images\): the dataset lists no images$"),
    ],
)
def test_no_usable_box_is_an_error_saying_why(tmp_path, annotations, images, message):
    records = coco(tmp_path, annotations, images)
    with pytest.raises(DatasetError, match=message):
        records.require_boxes("train on")
