"""COCO, VOC and YOLO readers on tiny files, the COCO writer, and round trips through COCO."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools.coco import COCO

from gfocal.data import DatasetError, detect_format, load_dataset, write_coco


def _boxes(records):
    return [
        (img.file_name, [(a.box, records.class_names[a.label], a.ignore) for a in img.annotations])
        for img in records.images
    ]


def test_coco_reader_maps_categories_and_keeps_fields(coco_dir):
    rec = load_dataset(coco_dir / "ann.json")
    assert rec.format == "coco" and rec.class_names == ["cat", "dog"] and rec.category_ids == [3, 7]
    assert [img.id for img in rec.images] == [1, 2, 5]
    a = rec.images[0].annotations
    assert a[0].box == (4.0, 5.0, 14.0, 25.0) and a[0].label == 1 and a[0].id == 10
    assert a[0].extra == {"ambiguous_edges": {"left": "blur"}, "area": 200}
    assert a[1].iscrowd and a[1].ignore and not a[0].ignore
    assert rec.images[2].annotations == [] and rec.problems.count("empty_image") == 1
    assert rec.images[0].path == coco_dir / "images" / "a.jpg"


def test_coco_area_sorts_boxes_by_size_in_evaluation_as_pycocotools_does(coco_dir):
    from gfocal.engine.evaluate import coco_ground_truth

    data = json.loads((coco_dir / "ann.json").read_text())
    data["annotations"][0]["area"] = 150.5  # a segment's area, smaller than its 10 x 20 box
    data["annotations"][2]["area"] = "n/a"  # not a number: the box area is used instead
    del data["annotations"][1]["area"]  # absent: the box area
    (coco_dir / "ann.json").write_text(json.dumps(data))
    rec = load_dataset(coco_dir / "ann.json")
    areas = [a["area"] for a in coco_ground_truth(rec)["annotations"]]
    assert areas == [150.5, 900.0, 64.0]
    assert [a.area for img in rec.images for a in img.annotations] == [200.0, 900.0, 64.0]  # the box's own


def test_coco_unknown_category_is_an_error_naming_the_record(coco_dir):
    data = json.loads((coco_dir / "ann.json").read_text())
    data["annotations"][2]["category_id"] = 99
    (coco_dir / "ann.json").write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=r"ann\.json, annotation id=12.*unknown category_id 99"):
        load_dataset(coco_dir / "ann.json")


def test_coco_write_read_round_trip_and_pycocotools(coco_dir, tmp_path):
    rec = load_dataset(coco_dir / "ann.json")
    out = write_coco(rec, tmp_path / "out" / "copy.json")
    again = load_dataset(out)
    assert _boxes(again) == [(f"../coco/images/{n}", b) for n, b in _boxes(rec)]
    assert again.images[0].annotations[0].extra == {"ambiguous_edges": {"left": "blur"}, "area": 200}
    coco = COCO(str(out))
    assert coco.getCatIds() == [1, 2] and coco.loadAnns(11)[0]["iscrowd"] == 1


def test_voc_reader_offsets_and_difficult(voc_dir):
    rec = load_dataset(voc_dir)
    assert rec.format == "voc" and rec.class_names == ["car", "person"]
    first = rec.images[0]
    assert first.id == "000001" and first.file_name == "000001.jpg"
    assert first.annotations[0].box == (0.0, 0.0, 10.0, 20.0) and first.annotations[0].label == 1
    assert first.annotations[1].difficult and first.annotations[1].extra == {"truncated": "0"}


def test_voc_unknown_class_with_class_list_is_an_error(voc_dir):
    with pytest.raises(DatasetError, match=r"000001\.xml.*object #1 \('car'\).*unknown class 'car'"):
        load_dataset(voc_dir, class_names=["person"])


def test_voc_split_file(voc_dir):
    (voc_dir / "ImageSets" / "Main").mkdir(parents=True)
    (voc_dir / "ImageSets" / "Main" / "val.txt").write_text("000002\n")
    assert [img.id for img in load_dataset(voc_dir, split="val").images] == ["000002"]


def test_voc_round_trip_through_coco(voc_dir, tmp_path):
    rec = load_dataset(voc_dir)
    again = load_dataset(write_coco(rec, voc_dir / "voc.json"))
    assert again.class_names == rec.class_names
    assert _boxes(again) == [(f"JPEGImages/{n}", b) for n, b in _boxes(rec)]
    assert [a.difficult for a in again.images[0].annotations] == [False, True]


def test_yolo_reader_splits_and_negatives(yolo_dir):
    rec = load_dataset(yolo_dir / "data.yaml")
    assert rec.format == "yolo" and rec.class_names == ["a", "b"] and len(rec) == 2
    x = rec.images[0]
    assert x.file_name == "images/train/x.jpg" and (x.width, x.height) == (64, 48)
    np.testing.assert_allclose(x.boxes(), [[24, 12, 40, 36], [12, 6, 20, 18]])
    assert rec.images[1].annotations == [] and rec.problems.count("missing_label_file") == 1
    assert len(load_dataset(yolo_dir / "data.yaml", split="val")) == 1


def test_yolo_polygon_line_becomes_its_box(yolo_dir, write_yolo):
    write_yolo(yolo_dir, "val", "poly", ["0 0.25 0.25 0.75 0.25 0.5 0.75"])
    rec = load_dataset(yolo_dir / "data.yaml", split="val")
    np.testing.assert_allclose(rec.images[0].boxes(), [[16, 12, 48, 36]])


def test_yolo_unknown_class_id_is_an_error_naming_file_and_line(yolo_dir, write_yolo):
    write_yolo(yolo_dir, "val", "bad", ["1 0.5 0.5 0.1 0.1", "5 0.5 0.5 0.2 0.2"])
    with pytest.raises(DatasetError, match=r"bad\.txt:2 .*unknown class id 5"):
        load_dataset(yolo_dir / "data.yaml", split="val")


def test_yolo_round_trip_through_coco(yolo_dir):
    rec = load_dataset(yolo_dir / "data.yaml")
    again = load_dataset(write_coco(rec, yolo_dir / "train.json"))
    assert _boxes(again) == _boxes(rec) and again.class_names == rec.class_names


def test_detect_format(coco_dir, voc_dir, yolo_dir, tmp_path):
    assert detect_format(coco_dir / "ann.json") == "coco"
    assert detect_format(voc_dir) == "voc"
    assert detect_format(yolo_dir / "data.yaml") == "yolo"
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="cannot tell the format"):
        detect_format(tmp_path / "empty")


def test_yolo_folder_without_yaml_uses_classes_txt(tmp_path, write_yolo):
    write_yolo(tmp_path, "", "q", ["1 0.5 0.5 0.5 0.5"])
    with pytest.raises(DatasetError, match="without class names"):
        load_dataset(tmp_path)
    (tmp_path / "classes.txt").write_text("a\nb\n")
    rec = load_dataset(tmp_path)
    assert rec.format == "yolo" and rec.class_names == ["a", "b"] and rec.images[0].labels().tolist() == [1]
