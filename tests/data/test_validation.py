"""Validation at load: one test per case; messages name the file and the record, counts are right."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from gfocal.data import DatasetError, DatasetWarning, ProblemReport, load_dataset
from gfocal.data.validation import sanitize_boxes
from support import files


def _coco(tmp_path, images, annotations, save=True):
    """A COCO json of ``images`` ((w, h) each, saved as 1.jpg, 2.jpg... unless not ``save``) and
    ``annotations`` ((image id, xywh box) each), one class."""
    if save:
        for i, size in enumerate(images, start=1):
            files.image(tmp_path / f"{i}.jpg", size)
    return files.coco(
        tmp_path / "ann.json",
        images=[
            {"id": i, "file_name": f"{i}.jpg", "width": w, "height": h} for i, (w, h) in enumerate(images, start=1)
        ],
        annotations=[{**files.box(list(b), 100 + k, img), "iscrowd": 0} for k, (img, b) in enumerate(annotations)],
        categories=[{"id": 1, "name": "thing"}],
    )


def _load_warns(path, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rec = load_dataset(path, **kwargs)
    return rec, [str(w.message) for w in caught if issubclass(w.category, DatasetWarning)]


def test_missing_image_is_skipped_and_named(tmp_path):
    path = _coco(tmp_path, [(32, 32), (32, 32)], [(2, (1, 1, 5, 5))])
    (tmp_path / "2.jpg").unlink()
    rec, messages = _load_warns(path)
    assert [img.id for img in rec.images] == [1]
    assert rec.problems.count("missing_image") == 1
    assert len(messages) == 1 and "1 image files missing" in messages[0] and "image id=2 (2.jpg)" in messages[0]


def test_unreadable_image_is_skipped_and_named(tmp_path):
    path = _coco(tmp_path, [(32, 32)], [])
    (tmp_path / "1.jpg").write_bytes(b"this is not an image")
    rec, messages = _load_warns(path)
    assert len(rec) == 0 and rec.problems.count("unreadable_image") == 1
    assert "ann.json, image id=1 (1.jpg)" in messages[0]


@pytest.mark.parametrize("suffix", ["jpg", "png"])
def test_truncated_image_is_skipped_and_named(tmp_path, suffix):
    rng = np.random.default_rng(0)
    image = tmp_path / f"t.{suffix}"
    Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(image)
    image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])
    path = files.coco(tmp_path / "ann.json", images=[{"id": 1, "file_name": image.name}], categories=[])
    for check in ("fast", "full"):
        rec, messages = _load_warns(path, check_images=check)
        assert len(rec) == 0 and rec.problems.count("truncated_image") == 1
        assert f"image id=1 ({image.name})" in messages[0]


def test_partly_outside_boxes_are_clipped_and_counted_in_one_warning(tmp_path):
    path = _coco(tmp_path, [(32, 24)], [(1, (-4, 2, 10, 10)), (1, (20, 10, 20, 20)), (1, (2, 2, 4, 4))])
    rec, messages = _load_warns(path)
    np.testing.assert_allclose(rec.images[0].boxes(), [[0, 2, 6, 12], [20, 10, 32, 24], [2, 2, 6, 6]])
    assert rec.problems.count("clipped_box") == 2
    assert len(messages) == 1 and messages[0].count("annotation id=") == 2 and "2 boxes partly outside" in messages[0]


def test_degenerate_and_outside_boxes_are_dropped_and_counted(tmp_path):
    boxes = [(1, (2, 2, 0, 5)), (1, (2, 2, 5, -1)), (1, (float("nan"), 2, 5, 5)), (1, (40, 2, 5, 5)), (1, (2, 2, 5, 5))]
    path = _coco(tmp_path, [(32, 24)], boxes)
    rec, messages = _load_warns(path)
    assert [a.id for a in rec.images[0].annotations] == [104]
    assert rec.problems.count("degenerate_box") == 3 and rec.problems.count("outside_box") == 1
    assert any("3 degenerate boxes" in m and "annotation id=100" in m for m in messages)


def test_duplicate_boxes_are_dropped(tmp_path):
    path = _coco(tmp_path, [(32, 24)], [(1, (2, 2, 5, 5)), (1, (2, 2, 5, 5))])
    rec, _ = _load_warns(path)
    assert [a.id for a in rec.images[0].annotations] == [100] and rec.problems.count("duplicate_box") == 1


def test_images_without_boxes_are_kept_as_negatives(tmp_path):
    path = _coco(tmp_path, [(32, 24), (32, 24)], [(1, (2, 2, 5, 5))])
    rec, messages = _load_warns(path, strict=True)
    assert len(rec) == 2 and rec.images[1].annotations == [] and rec.problems.notes == {"empty_image": 1}
    assert messages == []


def test_declared_size_mismatch_uses_the_file(tmp_path):
    path = _coco(tmp_path, [(32, 24)], [(1, (2, 2, 5, 5))])
    data = json.loads(path.read_text())
    data["images"][0]["width"] = 100
    path.write_text(json.dumps(data))
    rec, messages = _load_warns(path)
    assert (rec.images[0].width, rec.images[0].height) == (32, 24) and "declared 100x24, file 32x24" in messages[0]


def test_exif_rotated_image_size_is_the_displayed_one(tmp_path):
    image = Image.new("RGB", (40, 20))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90° on display
    image.save(tmp_path / "1.jpg", exif=exif)
    path = _coco(tmp_path, [(20, 40)], [(1, (2, 2, 10, 30))], save=False)
    rec, messages = _load_warns(path)
    assert (rec.images[0].width, rec.images[0].height) == (20, 40) and messages == []
    assert rec.problems.count("exif_rotated") == 1 and rec.images[0].boxes().tolist() == [[2, 2, 12, 32]]


@pytest.mark.parametrize("case", ["missing", "clipped", "degenerate"])
def test_strict_turns_warnings_into_errors(tmp_path, case):
    path = _coco(
        tmp_path,
        [(32, 24)],
        [(1, {"missing": (1, 1, 2, 2), "clipped": (-1, 1, 5, 5), "degenerate": (5, 1, 0, 5)}[case])],
    )
    if case == "missing":
        (tmp_path / "1.jpg").unlink()
    with pytest.raises(DatasetError, match=r"ann\.json, image id=1.*strict mode"):
        load_dataset(path, strict=True)


def test_malformed_yolo_line_is_skipped_with_file_and_line(yolo_dir, write_yolo):
    write_yolo(yolo_dir, "val", "bad", ["1 0.5 0.5 0.1", "0 a b c d", "1 0.5 0.5 0.2 0.2"])
    rec, messages = _load_warns(yolo_dir / "data.yaml", split="val")
    assert rec.problems.count("malformed_annotation") == 2
    assert "bad.txt:1" in messages[0] and "bad.txt:2" in messages[0]
    assert [len(img.annotations) for img in rec.images] == [1, 1]


def test_unreadable_voc_xml_is_skipped_and_named(voc_dir):
    (voc_dir / "Annotations" / "000003.xml").write_text("<annotation><object>")
    rec, messages = _load_warns(voc_dir)
    assert len(rec) == 2 and rec.problems.count("unreadable_annotation") == 1 and "000003.xml" in messages[0]


@settings(max_examples=60, deadline=None)
@given(
    boxes=st.lists(st.tuples(*[st.floats(-50, 150) | st.just(float("nan"))] * 4), max_size=8),
    size=st.tuples(st.integers(1, 100), st.integers(1, 100)),
)
def test_sanitized_boxes_are_always_inside_and_non_degenerate(boxes, size):
    array = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    labels = np.zeros(len(array), dtype=np.int64)
    report = ProblemReport()
    clipped, keep = sanitize_boxes(array, labels, size[0], size[1], report, [f"box {i}" for i in range(len(array))])
    kept = clipped[keep]
    assert (kept[:, 2] > kept[:, 0]).all() and (kept[:, 3] > kept[:, 1]).all()
    assert (kept >= 0).all() and (kept[:, [0, 2]] <= size[0]).all() and (kept[:, [1, 3]] <= size[1]).all()
    dropped = sum(report.count(k) for k in ("degenerate_box", "outside_box", "duplicate_box"))
    assert dropped == len(array) - keep.sum()
