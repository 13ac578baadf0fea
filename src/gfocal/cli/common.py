"""Helpers shared by the subcommands: user-facing errors and common options."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator

__all__ = [
    "CommandError",
    "user_errors",
    "add_precision_option",
    "add_compile_option",
    "add_image_size_option",
    "positive_int",
    "add_tiling_options",
    "tiling_config",
    "check_merge",
]


class CommandError(Exception):
    """An error caused by the user's input: printed as one line, exit status 2."""


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn the library's input errors into CommandError (no traceback for user mistakes)."""
    from gfocal.data import DatasetError  # here, not at the top: `gfocal --help` does not load torch
    from gfocal.models import WeightsError

    try:
        yield
    except (DatasetError, WeightsError, FileNotFoundError, FileExistsError, NotADirectoryError) as error:
        raise CommandError(str(error)) from error


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_image_size_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--image-size",
        type=positive_int,
        default=None,
        metavar="PIXELS",
        help="longer side of the network input (default: the one stored with the weights, used in training)",
    )


def add_compile_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--compile",
        action="store_true",
        default=None,
        help="torch.compile the network: faster after a slow first call (on 2 CPU cores, gfl_small: inference 1.2x "
        "after 16 s, training 1.14x after about a minute); pays off for long jobs at fixed image sizes",
    )


def add_precision_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16", "fp16"),
        default="auto",
        help="numeric precision of the network: auto = bf16 on CPUs with native bf16 (AMX/AVX512-BF16) "
        "and on bf16-capable GPUs, fp32 otherwise (default: auto)",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")


def add_tiling_options(parser: argparse.ArgumentParser) -> None:
    """--tile, --overlap, --merge: predict large images on overlapping tiles (gfocal.tiling)."""
    parser.add_argument(
        "--tile",
        type=positive_int,
        default=None,
        metavar="PIXELS",
        help="cut each image into overlapping tiles of this size, predict them in batches of --batch-size "
        "and merge the detections (for images much larger than the network input)",
    )
    parser.add_argument(
        "--overlap", type=float, default=0.2, help="with --tile: fraction of a tile its neighbours share (default 0.2)"
    )
    parser.add_argument(
        "--merge",
        choices=("dist", "nms", "nmm"),
        default="dist",
        help="with --tile: how detections of overlapping tiles merge: dist (default) fuses the views of an object "
        "edge by edge weighted by each edge's learned certainty, distrusting edges on tile borders; nms keeps the "
        "best box; nmm (SAHI's greedy merge) takes the union",
    )


#: Pixels of the largest image --tile accepts; PIL's own decompression-bomb limit is about 89 million.
TILED_IMAGE_PIXELS = 1_000_000_000


def tiling_config(args: argparse.Namespace):
    """The ``gfocal.tiling.TilingConfig`` the tiling options ask for, or None without --tile.

    With --tile, images up to :data:`TILED_IMAGE_PIXELS` are accepted (``PIL.Image.MAX_IMAGE_PIXELS``
    is raised to it): tiling exists for images larger than PIL lets through by default (10,000 x 10,000).
    """
    if args.tile is None:
        return None
    from PIL import Image

    from gfocal.tiling import TilingConfig

    if Image.MAX_IMAGE_PIXELS is not None:
        Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS, TILED_IMAGE_PIXELS)

    try:
        return TilingConfig(args.tile, args.overlap, args.merge, batch_size=args.batch_size)
    except ValueError as error:
        raise CommandError(f"--tile/--overlap/--merge: {error}") from error


def check_merge(tiling, has_distributions: bool, weights: str) -> None:
    """The distribution-aware merge reads the edge distributions: a Dirac-box model has none."""
    if tiling is not None and tiling.merge == "dist" and not has_distributions:
        raise CommandError(
            f"--merge dist needs a model with edge distributions; {weights} regresses plain distances "
            "(use --merge nms or nmm)"
        )
