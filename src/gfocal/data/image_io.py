"""Image files: a cheap integrity probe for validation, and decoding to RGB uint8.

Images over ``PIL.Image.MAX_IMAGE_PIXELS`` (PIL's decompression-bomb limit,
about 89 Mpx; PIL refuses twice that at open) are refused before any pixel is
allocated: the probe reports them as ``oversized_image``, decoding raises
:class:`DatasetError`. Raise ``PIL.Image.MAX_IMAGE_PIXELS`` to accept larger images.

Decoding applies the EXIF orientation (``PIL.ImageOps.exif_transpose``) and
converts every PIL mode to 8-bit RGB: grayscale is replicated, alpha and
palette transparency are dropped, CMYK is converted, and 16/32-bit integer and
float images are *scaled* to 0..255 (not clipped).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from gfocal.data.problems import DatasetError

__all__ = ["ImageCheck", "ImageInfo", "ImageProblem", "probe_image", "decode_image", "to_rgb"]

ImageCheck = Literal["none", "fast", "full"]

_EXIF_ORIENTATION = 0x0112
_TRANSPOSING_ORIENTATIONS = {5, 6, 7, 8}  # orientations that swap width and height
_JPEG_END = b"\xff\xd9"
_PNG_END = b"IEND"


@dataclass(frozen=True)
class ImageInfo:
    """What a probe learnt: size as displayed, the raw size, the PIL mode, the EXIF orientation (1 = none)."""

    width: int
    height: int
    raw_width: int
    raw_height: int
    mode: str
    orientation: int


class ImageProblem(Exception):
    """An image failed its probe; ``kind`` is a :mod:`gfocal.data.problems` kind."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


def _tail(path: Path, n: int = 64) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(max(os.path.getsize(path) - n, 0))
        return handle.read()


def probe_image(path: str | os.PathLike[str], check: ImageCheck = "fast") -> ImageInfo:
    """Read an image's header (and, with ``check="full"``, decode it) to validate it.

    ``"fast"`` reads the header and checks that a JPEG/PNG file ends with its
    end marker, which catches truncated downloads without decoding;
    ``"full"`` decodes every pixel. Raises :class:`ImageProblem`.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageProblem("missing_image", f"image file not found: {path}")
    try:
        with Image.open(path) as im:
            fmt, mode, (w, h) = im.format, im.mode, im.size
            if _too_large(w, h):
                raise ImageProblem(
                    "oversized_image",
                    f"image too large to decode: {path} is {w}x{h} = {w * h} "
                    f"pixels, over PIL.Image.MAX_IMAGE_PIXELS = {Image.MAX_IMAGE_PIXELS}",
                )
            # PNG's getexif() decodes every pixel to look for an eXIf chunk after the image data; read only
            # one stored before it (in the header), so the fast probe stays a header read.
            has_exif = fmt != "PNG" or "exif" in im.info
            orientation = int(im.getexif().get(_EXIF_ORIENTATION, 1) or 1) if has_exif else 1
            if check == "full":
                im.load()
    except UnidentifiedImageError as exc:
        raise ImageProblem("unreadable_image", f"not a readable image: {path} ({exc})") from exc
    except Image.DecompressionBombError as exc:
        raise ImageProblem("oversized_image", f"image too large to decode: {path} ({exc})") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageProblem("truncated_image", f"corrupt or truncated image: {path} ({exc})") from exc
    if check == "fast":
        end = {"JPEG": _JPEG_END, "PNG": _PNG_END}.get(fmt or "")
        if end is not None and end not in _tail(path):
            raise ImageProblem("truncated_image", f"truncated {fmt} file (no end marker): {path}")
    swap = orientation in _TRANSPOSING_ORIENTATIONS
    return ImageInfo(h if swap else w, w if swap else h, w, h, mode, orientation)


def _too_large(width: int, height: int) -> bool:
    return Image.MAX_IMAGE_PIXELS is not None and width * height > Image.MAX_IMAGE_PIXELS


def _scale_to_uint8(array: np.ndarray) -> np.ndarray:
    """Scale a high-bit-depth single-channel array to uint8 by its type's range."""
    if np.issubdtype(array.dtype, np.floating):
        array = np.nan_to_num(array.astype(np.float32))
        top = 1.0 if array.max(initial=0.0) <= 1.0 else (255.0 if array.max() <= 255.0 else 65535.0)
        return np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
    top = 255 if array.max(initial=0) <= 255 else 65535  # 16-bit data is stored in PIL "I" images
    return np.clip(array.astype(np.float64) / top * 255.0 + 0.5, 0, 255).astype(np.uint8)


def to_rgb(im: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB (16-bit and float scaled, alpha dropped)."""
    if im.mode == "RGB":
        return im
    if im.mode in ("I", "F") or im.mode.startswith("I;16"):
        return Image.fromarray(_scale_to_uint8(np.asarray(im)), mode="L").convert("RGB")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")  # avoids PIL's palette-transparency warning
    return im.convert("RGB")


def decode_image(path: str | os.PathLike[str], draft_size: tuple[int, int] | None = None) -> torch.Tensor:
    """Decode an image file to ``uint8 Tensor[3, H, W]`` RGB, EXIF orientation applied.

    Args:
        path: image file.
        draft_size: optional ``(w, h)`` lower bound for JPEG DCT-domain downscaling
            (PIL ``draft``); speeds up decoding of large JPEGs that will be
            resized anyway. The result is then smaller than the file: callers
            must rescale boxes by the returned size.

    Raises:
        DatasetError: the file is missing, not an image, truncated, or over
            ``PIL.Image.MAX_IMAGE_PIXELS`` (checked from the header, before decoding).
    """
    try:
        with Image.open(path) as im:
            if _too_large(*im.size):
                raise DatasetError(
                    f"{path}: image is {im.width}x{im.height} = {im.width * im.height} pixels, over "
                    f"PIL.Image.MAX_IMAGE_PIXELS = {Image.MAX_IMAGE_PIXELS}; refusing to decode it"
                )
            if draft_size is not None and im.format == "JPEG":
                im.draft("RGB", draft_size)
            im = to_rgb(ImageOps.exif_transpose(im))
            array = np.array(im, dtype=np.uint8)  # [H, W, 3], writable
    except Image.DecompressionBombError as exc:  # PIL refuses twice the limit when opening
        raise DatasetError(
            f"{path}: image over twice PIL.Image.MAX_IMAGE_PIXELS = {Image.MAX_IMAGE_PIXELS}, "
            f"refusing to decode it ({exc})"
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, DatasetError):
            raise
        raise DatasetError(f"{path}: cannot decode image ({type(exc).__name__}: {exc})") from exc
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()  # [3, H, W]
