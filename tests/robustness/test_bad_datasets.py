"""Bad input at the dataset readers: every case is a clear DatasetError naming the file and record, or a
documented recovery (the record is skipped or repaired, counted under one kind, named in the examples).

The table has one id per case; ``docs/reliability.md`` reports the count. Cases already covered in
``tests/data`` (missing and truncated images, clipping, duplicates, EXIF, colour modes) are not repeated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from gfocal.data import DatasetError, load_dataset
from support.files import box, coco, coco_with_image, image, jpeg_claiming, png_header_only


@dataclass(frozen=True)
class Error:
    """load_dataset raises DatasetError whose message matches ``pattern`` (which names the file)."""

    pattern: str


@dataclass(frozen=True)
class Skipped:
    """Loads; ``count`` problems of ``kind``, the first example naming ``names``; strict mode raises instead."""

    kind: str
    count: int
    names: str
    images: int


@dataclass(frozen=True)
class Loads:
    """Loads cleanly and ``check(records)`` holds."""

    check: Callable


def voc(root: Path, xml: str, name: str = "x", classes: bytes | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    image(root / f"{name}.jpg")
    (root / f"{name}.xml").write_text(xml)
    if classes is not None:
        (root / "classes.txt").write_bytes(classes)
    return root


def voc_object(bndbox: tuple, name: str = "cat", size: tuple = (32, 24)) -> str:
    x0, y0, x1, y1 = bndbox
    return (
        f"<annotation><filename>x.jpg</filename><size><width>{size[0]}</width><height>{size[1]}</height></size>"
        f"<object><name>{name}</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax>"
        "</bndbox></object></annotation>"
    )


BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
    + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(8))
    + "]><annotation><filename>&i;</filename></annotation>"
)


def yolo(
    root: Path, yaml: str = "path: .\ntrain: images/train\nnames: [a, b]\n", label: str | bytes | None = None
) -> Path:
    image(root / "images" / "train" / "a.jpg")
    if label is not None:
        txt = root / "labels" / "train" / "a.txt"
        txt.parent.mkdir(parents=True, exist_ok=True)
        txt.write_bytes(label if isinstance(label, bytes) else label.encode())
    (root / "data.yaml").write_text(yaml)
    return root / "data.yaml"


def rotated_png(path: Path) -> Path:
    im = Image.new("RGB", (32, 24))
    exif = im.getexif()
    exif[0x0112] = 6  # displayed rotated by 90 degrees
    im.save(path.with_suffix(".png"), exif=exif)
    return path.with_suffix(".png")


def many_boxes(t: Path) -> Path:
    anns = [box([i % 50, i // 50 * 0.5, 5, 5], ann_id=i) for i in range(3000)]  # all distinct, all inside
    image(t / "big.png", (64, 48))
    return coco(t / "ann.json", images=[{"id": 1, "file_name": "big.png"}], annotations=anns)


CASES = [
    # --- COCO json ---------------------------------------------------------------------------------------------
    pytest.param(
        lambda t: coco(t / "ann.json", raw='{"images": ['),
        Error(r"ann\.json: not valid JSON"),
        id="coco-truncated-json",
    ),
    pytest.param(
        lambda t: coco(t / "ann.json", raw=b"\xff\xfe{}"), Error(r"ann\.json: not valid JSON"), id="coco-not-utf8"
    ),
    pytest.param(
        lambda t: coco(t / "ann.json", raw="[]"),
        Error(r"ann\.json: not a COCO detection file"),
        id="coco-top-level-list",
    ),
    pytest.param(
        lambda t: coco(t / "ann.json", raw="{}"), Error(r"ann\.json: not a COCO detection file"), id="coco-empty-object"
    ),
    pytest.param(
        lambda t: coco(t / "ann.json", raw='{"images": [], "categories": [], "annotations": null}'),
        Error(r"ann\.json: 'annotations' must be a list"),
        id="coco-annotations-null",
    ),
    pytest.param(
        lambda t: coco(t / "ann.json", categories=[{"id": 1}, {"id": 1}]),
        Error(r"ann\.json: duplicate category ids \[1, 1\]"),
        id="coco-duplicate-category-ids",
    ),
    pytest.param(
        lambda t: coco(t / "ann.json", categories=[3]),
        Error(r"ann\.json: malformed 'categories' entry"),
        id="coco-category-not-object",
    ),
    pytest.param(
        lambda t: coco(t / "ann.json", annotations=[box([1, 1, 4, 4], category_id=9)]),
        Error(r"ann\.json, annotation id=1, image id=1: unknown category_id 9"),
        id="coco-label-out-of-range",
    ),
    pytest.param(
        lambda t: coco(
            t / "ann.json",
            images=[{"id": 1, "file_name": "a.jpg"}, {"id": 1, "file_name": "b.jpg"}]
            if image(t / "a.jpg") and image(t / "b.jpg")
            else None,
        ),
        Skipped("duplicate_image", 1, r"image id=1 \(b\.jpg\)", 1),
        id="coco-duplicate-image-ids",
    ),
    pytest.param(
        lambda t: coco(t / "ann.json", annotations=[box([1, 1, 4, 4], image_id=7)]),
        Skipped("orphan_annotation", 1, "image_id 7 is not in 'images'", 1),
        id="coco-annotation-for-missing-image",
    ),
    pytest.param(
        lambda t: coco(t / "ann.json", annotations=[box([1, float("nan"), 4, 4])]),
        Skipped("degenerate_box", 1, r"annotation id=1: degenerate box", 1),
        id="coco-nan-box",
    ),
    pytest.param(
        lambda t: coco(t / "ann.json", annotations=[box([1, 1, float("inf"), 4])]),
        Skipped("degenerate_box", 1, r"annotation id=1: degenerate box", 1),
        id="coco-inf-box",
    ),
    pytest.param(
        lambda t: coco(t / "ann.json", annotations=[box([10, 10, -4, 5])]),
        Skipped("degenerate_box", 1, r"annotation id=1: degenerate box", 1),
        id="coco-negative-width",
    ),
    pytest.param(
        lambda t: coco(t / "ann.json", annotations=[box([3, 3, 0, 0])]),
        Skipped("degenerate_box", 1, r"annotation id=1: degenerate box", 1),
        id="coco-zero-size-box",
    ),
    pytest.param(
        lambda t: coco(t / "ann.json", annotations=[box("1234")]),
        Skipped("malformed_annotation", 1, r"annotation id=1: .*bbox is a str", 1),
        id="coco-bbox-is-a-string",
    ),
    pytest.param(
        lambda t: coco(t / "ann.json", annotations=[box([1, 2, 3])]),
        Skipped("malformed_annotation", 1, r"annotation id=1: missing or malformed", 1),
        id="coco-bbox-three-numbers",
    ),
    pytest.param(
        lambda t: coco(t / "ann.json", annotations=[box([1, 1, 4, 4], image_id=[1])]),
        Skipped("malformed_annotation", 1, r"annotation id=1: missing or malformed", 1),
        id="coco-image-id-unhashable",
    ),
    pytest.param(
        lambda t: coco(
            t / "ann.json",
            images=[{"id": 1, "file_name": "a.jpg", "width": "wide", "height": 24}] if image(t / "a.jpg") else None,
        ),
        Skipped("malformed_annotation", 1, r"image id=1 \(a\.jpg\): width/height 'wide'x24 are not numbers", 0),
        id="coco-width-not-a-number",
    ),
    pytest.param(
        lambda t: coco(t / "ann.json", images=[{"id": {"a": 1}, "file_name": "a.jpg"}]),
        Skipped("malformed_annotation", 1, r"ann\.json, image entry .*needs an int or str 'id'", 0),
        id="coco-image-id-object",
    ),
    pytest.param(
        lambda t: coco(t / "ann.json", images=[{"id": 1, "file_name": "."}]),
        Skipped("missing_image", 1, r"image id=1 \(\.\): image file not found", 0),
        id="coco-file-name-is-a-folder",
    ),
    pytest.param(
        lambda t: coco(t / "ann.json", images=[]),
        Loads(lambda r: len(r) == 0 and not r.problems.warnings),
        id="coco-empty-dataset",
    ),
    pytest.param(
        many_boxes,
        Loads(lambda r: len(r.images[0].annotations) == 3000 and not r.problems.warnings),
        id="coco-3000-boxes-in-one-image",
    ),
    # --- image files -----------------------------------------------------------------------------------------------
    pytest.param(
        lambda t: coco_with_image(t, lambda p: (p.with_suffix(".jpg").write_bytes(b""), p.with_suffix(".jpg"))[1]),
        Skipped("unreadable_image", 1, r"img\.jpg", 0),
        id="zero-byte-image",
    ),
    pytest.param(
        lambda t: coco_with_image(
            t, lambda p: (p.with_suffix(".png").write_text("<html>404</html>"), p.with_suffix(".png"))[1]
        ),
        Skipped("unreadable_image", 1, r"img\.png", 0),
        id="html-page-saved-as-png",
    ),
    pytest.param(
        lambda t: coco_with_image(t, lambda p: png_header_only(p.with_suffix(".png"), 20000, 20000)),
        Skipped("oversized_image", 1, r"img\.png.*too large", 0),
        id="png-header-20000x20000",
    ),
    pytest.param(
        lambda t: coco_with_image(t, lambda p: png_header_only(p.with_suffix(".png"), 10000, 10000)),
        Skipped("oversized_image", 1, r"img\.png is 10000x10000 = 100000000 pixels", 0),
        id="png-header-10000x10000-where-pil-only-warns",
    ),
    pytest.param(
        lambda t: coco_with_image(t, lambda p: jpeg_claiming(p.with_suffix(".jpg"), 20000, 20000)),
        Skipped("oversized_image", 1, r"img\.jpg.*too large", 0),
        id="jpeg-header-20000x20000",
    ),
    pytest.param(
        lambda t: coco_with_image(t, lambda p: image(p.with_suffix(".png"), (1, 1))),
        Loads(lambda r: (r.images[0].width, r.images[0].height) == (1, 1) and r.problems.count("outside_box") == 1),
        id="one-pixel-image",
    ),
    pytest.param(
        lambda t: coco_with_image(t, rotated_png),
        Loads(lambda r: (r.images[0].width, r.images[0].height) == (24, 32) and r.problems.count("exif_rotated") == 1),
        id="png-exif-rotated",
    ),
    pytest.param(
        lambda t: coco_with_image(t, lambda p: image(p.parent / "données é" / "画像 ü.png")),
        Loads(lambda r: r.images[0].path.name == "画像 ü.png"),
        id="non-ascii-path",
    ),
    # --- Pascal VOC -----------------------------------------------------------------------------------------------
    pytest.param(
        lambda t: voc(t / "voc", "<annotation><object>"),
        Skipped("unreadable_annotation", 1, r"x\.xml", 0),
        id="voc-malformed-xml",
    ),
    pytest.param(
        lambda t: voc(t / "voc", BILLION_LAUGHS),
        Skipped("unreadable_annotation", 1, r"x\.xml", 0),
        id="voc-entity-expansion-bomb",
    ),
    pytest.param(
        lambda t: voc(t / "voc", voc_object((20, 20, 5, 5))),
        Skipped("degenerate_box", 1, r"x\.xml \(x\.jpg\), object #0 \('cat'\): degenerate", 1),
        id="voc-reversed-corners",
    ),
    pytest.param(
        lambda t: voc(t / "voc", voc_object((1, "one", 5, 5))),
        Skipped("malformed_annotation", 1, r"x\.xml \(x\.jpg\), object #0 \('cat'\): <bndbox> is not numbers", 1),
        id="voc-bndbox-not-numbers",
    ),
    pytest.param(
        lambda t: voc(t / "voc", voc_object((1, 1, 5, 5), size=("nan", 24))),
        Skipped("malformed_annotation", 1, r"x\.xml \(x\.jpg\): <size> 'nan'x'24' is not a number", 0),
        id="voc-size-nan",
    ),
    pytest.param(
        lambda t: voc(t / "voc", voc_object((1, 1, 5, 5), name="dog"), classes=b"cat\n"),
        Error(r"x\.xml \(x\.jpg\), object #0 \('dog'\): unknown class 'dog'"),
        id="voc-unknown-class",
    ),
    pytest.param(
        lambda t: voc(t / "voc", voc_object((1, 1, 5, 5)), classes=b"\xff\xfecat"),
        Error(r"classes\.txt: cannot read the class names"),
        id="voc-classes-not-utf8",
    ),
    pytest.param(
        lambda t: (t / "voc" / "Annotations").mkdir(parents=True) or t / "voc",
        Error(r"voc: no \.xml annotation files"),
        id="voc-no-annotations",
    ),
    # --- YOLO ----------------------------------------------------------------------------------------------------
    pytest.param(
        lambda t: yolo(t, "train: [images/train\nnames: [a]\n"),
        Error(r"data\.yaml: cannot read the data yaml"),
        id="yolo-malformed-yaml",
    ),
    pytest.param(
        lambda t: yolo(t, "train: images/train\n"),
        Error(r"data\.yaml: a YOLO data yaml needs 'names'"),
        id="yolo-no-names",
    ),
    pytest.param(
        lambda t: yolo(t, "train: images/train\nnames: abc\n"),
        Error(r"data\.yaml: 'names' must be a non-empty list"),
        id="yolo-names-is-a-string",
    ),
    pytest.param(
        lambda t: yolo(t, "train: images/train\nnames: {a: x}\n"),
        Error(r"data\.yaml: 'names' ids must be the integers"),
        id="yolo-names-bad-ids",
    ),
    pytest.param(
        lambda t: yolo(t, "train: 5\nnames: [a]\n"),
        Error(r"data\.yaml: 'train' must be a path"),
        id="yolo-split-not-a-path",
    ),
    pytest.param(
        lambda t: yolo(t, label="5 0.5 0.5 0.1 0.1\n"),
        Error(r"a\.txt:1 \(a\.jpg\): unknown class id 5"),
        id="yolo-label-out-of-range",
    ),
    pytest.param(
        lambda t: yolo(t, label="-1 0.5 0.5 0.1 0.1\n"),
        Error(r"a\.txt:1 \(a\.jpg\): unknown class id -1"),
        id="yolo-negative-label",
    ),
    pytest.param(
        lambda t: yolo(t, label="nan 0.5 0.5 0.1 0.1\n"),
        Skipped("malformed_annotation", 1, r"a\.txt:1 \(a\.jpg\)", 1),
        id="yolo-nan-class",
    ),
    pytest.param(
        lambda t: yolo(t, label="0 0.5 0.5\n"),
        Skipped("malformed_annotation", 1, r"a\.txt:1 \(a\.jpg\)", 1),
        id="yolo-short-line",
    ),
    pytest.param(
        lambda t: yolo(t, label="0 0.5 nan 0.1 0.1\n"),
        Skipped("degenerate_box", 1, r"a\.txt:1 \(a\.jpg\)", 1),
        id="yolo-nan-coordinate",
    ),
    pytest.param(
        lambda t: yolo(t, label="0 3.0 3.0 0.1 0.1\n"),
        Skipped("outside_box", 1, r"a\.txt:1 \(a\.jpg\)", 1),
        id="yolo-box-outside",
    ),
    pytest.param(
        lambda t: yolo(t, label=b"\xff\xfe0 0.5 0.5 0.1 0.1"),
        Skipped("unreadable_annotation", 1, r"a\.txt \(a\.jpg\)", 0),
        id="yolo-label-not-utf8",
    ),
]


@pytest.mark.parametrize("make, expected", CASES)
def test_bad_dataset_input_fails_clearly_or_recovers(tmp_path, make, expected):
    path = make(tmp_path)
    if isinstance(expected, Error):
        with pytest.raises(DatasetError, match=expected.pattern):
            load_dataset(path, warn=False)
        return
    records = load_dataset(path, warn=False)
    if isinstance(expected, Loads):
        assert expected.check(records)
        return
    assert records.problems.count(expected.kind) == expected.count, records.problems.lines()
    assert len(records) == expected.images
    assert any(__import__("re").search(expected.names, m) for m in records.problems.examples[expected.kind])
    with pytest.raises(DatasetError, match=expected.kind):
        load_dataset(path, strict=True, warn=False)
