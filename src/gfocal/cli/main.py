"""The ``gfocal`` command: one subcommand per job, each registered by its own module."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gfocal import __version__
from gfocal.cli import analyze


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gfocal",
        description="Generalized Focal Loss (GFL) object detectors: train, evaluate, predict, analyse, export.",
    )
    parser.add_argument("--version", action="version", version=f"gfocal {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    analyze.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
