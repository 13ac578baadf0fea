"""The ``gfocal`` command: one subcommand per job, each registered by its own module."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from gfocal import __version__
from gfocal.cli import analyze, bench, convert, data, demo, evaluate, export, predict, train
from gfocal.cli.common import CommandError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gfocal",
        description="Generalized Focal Loss (GFL) object detectors: train, evaluate, predict, analyse, export.",
    )
    parser.add_argument("--version", action="version", version=f"gfocal {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only print warnings and results")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in (demo, train, evaluate, predict, data, analyze, export, convert, bench):
        command.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.run(args) or 0
    except CommandError as error:
        # A user mistake: one clear line, no traceback.
        print(f"gfocal {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
