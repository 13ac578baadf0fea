"""The tests' one builder of tiny datasets and image files, good and bad, made in the test's tmp_path (nothing is
downloaded): plain images, COCO json files and their boxes, VOC annotations, and files that lie about their size."""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image


def image(path: Path, size: tuple[int, int] = (32, 24), mode: str = "RGB", colour: int = 90) -> Path:
    """A plain ``size = (w, h)`` image file of ``mode`` (``"I;16"``: 16-bit grey); the format follows the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    if mode == "I;16":
        Image.fromarray(np.full((h, w), 40000, dtype=np.uint16)).save(path)
    else:
        Image.new(mode, size, colour if mode in ("L", "P", "1") else (colour,) * len(mode)).save(path)
    return path


def coco(
    path: Path,
    images: list | None = None,
    annotations: list | None = None,
    categories: list | None = None,
    raw: str | bytes | None = None,
) -> Path:
    """A COCO json at ``path``; by default one 32x24 image ``a.jpg`` (made next to it), no boxes, one class ``x``
    (id 1). ``raw``: the file's bytes instead, as they are."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if raw is not None:
        path.write_bytes(raw if isinstance(raw, bytes) else raw.encode())
        return path
    if images is None:
        image(path.parent / "a.jpg")
        images = [{"id": 1, "file_name": "a.jpg", "width": 32, "height": 24}]
    if categories is None:
        categories = [{"id": 1, "name": "x"}]
    data = {"images": images, "annotations": annotations or [], "categories": categories}
    path.write_text(json.dumps(data))
    return path


def coco_with_image(folder: Path, make: Callable[[Path], Path], **entry) -> Path:
    """``folder/ann.json`` with one image, made by ``make(folder / "images" / "img")`` (which returns the file it
    wrote), its image entry extended by ``entry``, and one box."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    file = make(folder / "images" / "img")
    name = file.relative_to(folder / "images").as_posix()
    return coco(folder / "ann.json", images=[{"id": 1, "file_name": name, **entry}], annotations=[box([1, 1, 4, 4])])


def box(bbox, ann_id: int = 1, image_id=1, category_id=1) -> dict:
    return {"id": ann_id, "image_id": image_id, "category_id": category_id, "bbox": bbox}


def voc_xml(
    file_name: str, size: tuple[int, int], objects: list[tuple[str, tuple[float, float, float, float], int]]
) -> str:
    """A VOC annotation: objects are ``(name, (xmin, ymin, xmax, ymax), difficult)``."""
    objs = "".join(
        f"<object><name>{n}</name><difficult>{d}</difficult><truncated>0</truncated><bndbox>"
        f"<xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for n, b, d in objects
    )
    return f"<annotation><filename>{file_name}</filename><size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>{objs}</annotation>"


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A valid PNG *header* claiming ``width x height`` with a tiny IDAT: decoding it would need width*height*3 bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )
    return path


def jpeg_claiming(path: Path, width: int, height: int) -> Path:
    """A small JPEG whose SOF0 marker is patched to claim ``width x height``."""
    image(path, (16, 16))
    data = bytearray(path.read_bytes())
    sof = data.index(b"\xff\xc0")  # SOF0: marker, length(2), precision(1), height(2), width(2)
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    path.write_bytes(bytes(data))
    return path
