"""The ``gfocal`` command: one subcommand per job, each registered by its own module."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import warnings
from collections.abc import Iterator, Sequence

from gfocal import __version__
from gfocal.cli import analyze, bench, convert, data, demo, evaluate, export, predict, select, train
from gfocal.cli.common import CommandError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gfocal",
        description="Generalized Focal Loss (GFL) object detectors: train, evaluate, predict, analyse, export.",
    )
    parser.add_argument("--version", action="version", version=f"gfocal {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only print warnings and results")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in (demo, train, evaluate, predict, select, data, analyze, export, convert, bench):
        command.register(subparsers)
    return parser


class _LevelFormatter(logging.Formatter):
    """Log lines as plain messages; warnings and errors prefixed ``warning: ``/``error: `` like Python warnings."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        return f"{record.levelname.lower()}: {message}" if record.levelno >= logging.WARNING else message


def _format_warning(
    message: Warning | str, category: type[Warning], filename: str, lineno: int, line: str | None = None
) -> str:
    """One line per warning, without Python's ``file.py:123: Category:`` prefix and source-line echo."""
    kind = "" if issubclass(category, UserWarning) else f"{category.__name__}: "
    return f"warning: {kind}{message}\n"


@contextlib.contextmanager
def _readable_warnings() -> Iterator[None]:
    """Print warnings as ``warning: MESSAGE`` while a command runs (DataLoader workers forked meanwhile inherit it).

    Only the CLI changes this global state, and puts it back: the library never does.
    """
    previous = warnings.formatwarning
    warnings.formatwarning = _format_warning
    try:
        yield
    finally:
        warnings.formatwarning = previous


@contextlib.contextmanager
def _restored_decoding_limit() -> Iterator[None]:
    """Put PIL's decoding limit back after a command: ``--tile`` raises it for the run (see
    ``cli.common.tiling_config``), and a caller of :func:`main` keeps its own limit afterwards."""
    from PIL import Image

    previous = Image.MAX_IMAGE_PIXELS
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(_LevelFormatter("%(message)s"))
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, handlers=[handler])
    if args.command is None:
        parser.print_help()
        return 0
    try:
        with _readable_warnings(), _restored_decoding_limit():
            return args.run(args) or 0
    except CommandError as error:
        # A user mistake: one clear line, no traceback.
        print(f"gfocal {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
