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
    "add_tta_options",
    "tta_config",
    "check_fusion",
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
        help="with --tile: how detections of overlapping tiles merge: dist (default) joins the views of an object "
        "and takes each edge from the view most certain of it (its learned distribution), never an edge on a tile "
        "border; nms keeps the best box; nmm (SAHI's greedy merge) takes the union",
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


def add_tta_options(parser: argparse.ArgumentParser) -> None:
    """--tta, --tta-scales, --tta-no-flip, --fusion: test-time augmentation (gfocal.models.fusion)."""
    parser.add_argument(
        "--tta",
        action="store_true",
        help="test-time augmentation: predict each image at several input scales, with and without a horizontal "
        "flip, and merge the views' detections (--fusion); costs one forward pass per view",
    )
    parser.add_argument(
        "--tta-scales",
        type=float,
        nargs="+",
        default=None,
        metavar="FACTOR",
        help="with --tta: factors on the network input size (default 0.83 1.0 1.2)",
    )
    parser.add_argument("--tta-no-flip", action="store_true", help="with --tta: no flipped views")
    parser.add_argument(
        "--fusion",
        choices=("distribution", "wbf", "nms"),
        default=None,
        help="with --tta: how the views merge: distribution (default) weighs each edge by its learned certainty "
        "(score / std^2); wbf averages coordinates weighted by score; nms keeps the best box",
    )


#: The views ``--tta`` makes without ``--tta-scales``: a sixth smaller and a fifth larger than the model's size.
DEFAULT_TTA_SCALES = (0.83, 1.0, 1.2)


def tta_config(args: argparse.Namespace):
    """The ``gfocal.models.fusion.TestTimeAugmentation`` the options ask for, or None without --tta."""
    if not args.tta:
        if args.tta_scales is not None or args.tta_no_flip or args.fusion is not None:
            raise CommandError("--tta-scales, --tta-no-flip and --fusion need --tta")
        return None
    if args.tile is not None:
        raise CommandError("--tta and --tile do not combine (each tile would need its own views); choose one")
    from gfocal.models.fusion import TestTimeAugmentation

    try:
        return TestTimeAugmentation(tuple(args.tta_scales or DEFAULT_TTA_SCALES), flip=not args.tta_no_flip)
    except ValueError as error:
        raise CommandError(f"--tta-scales: {error}") from error


def check_fusion(fusion: str, has_distributions: bool, weights: str) -> None:
    """Distribution fusion weighs edges by their learned spread: a Dirac-box model has none."""
    if fusion == "distribution" and not has_distributions:
        raise CommandError(
            f"--fusion distribution needs a model with edge distributions; {weights} regresses plain distances "
            "(use --fusion wbf or nms)"
        )
