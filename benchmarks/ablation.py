"""The paper's ablation at CPU scale (or, with --full, at the paper's settings on a GPU).

    python benchmarks/ablation.py [--seeds 0 1 2] [--epochs 5] [--variants atss gfl] [--markdown table.md] [--json F]

Runs ``gfocal bench ablation`` with the other options (see ``gfocal bench ablation --help``), then writes
its ``OUT/ablation.json`` with the machine, commit and command (``common.report``) to ``--json``.
"""

import argparse
import json
import sys
from pathlib import Path

from common import add_json_argument, report

from gfocal.cli.main import main


def run() -> int:
    parser = argparse.ArgumentParser(add_help=False)  # --help is gfocal bench ablation's
    parser.add_argument("--out", default="runs/ablation")
    add_json_argument(parser, "ablation")
    args, options = parser.parse_known_args()
    status = main(["bench", "ablation", "--out", args.out, *options])
    if status == 0:
        report(json.loads((Path(args.out) / "ablation.json").read_text()), args.json, quiet=True)
    return status


if __name__ == "__main__":
    sys.exit(run())
