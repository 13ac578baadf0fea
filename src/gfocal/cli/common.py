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
