"""Tiny bad and good input files, made in the test's tmp_path (nothing is downloaded)."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

from PIL import Image


def image(path: Path, size: tuple[int, int] = (32, 24), mode: str = "RGB") -> Path:
    """A plain ``size = (w, h)`` image file; the format follows the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, 90 if mode in ("L", "P", "1") else (90,) * len(mode)).save(path)
    return path


def coco(
    path: Path,
    images: list | None = None,
    annotations: list | None = None,
    categories: list | None = None,
    raw: str | bytes | None = None,
) -> Path:
    """A COCO json at ``path``; by default one 32x24 image ``a.jpg`` (made next to it), no boxes, one class."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if raw is not None:
        path.write_bytes(raw if isinstance(raw, bytes) else raw.encode())
        return path
    if images is None:
        image(path.parent / "a.jpg")
        images = [{"id": 1, "file_name": "a.jpg", "width": 32, "height": 24}]
    data = {"images": images, "annotations": annotations or [], "categories": categories or [{"id": 1, "name": "x"}]}
    path.write_text(json.dumps(data))
    return path


def box(bbox, ann_id: int = 1, image_id=1, category_id=1) -> dict:
    return {"id": ann_id, "image_id": image_id, "category_id": category_id, "bbox": bbox}


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
