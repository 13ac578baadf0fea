"""The paper's ablation at CPU scale (or, with --full, at the paper's settings on a GPU).

    python benchmarks/ablation.py [--seeds 0 1 2] [--epochs 5] [--variants atss gfl] [--markdown table.md]

Same as ``gfocal bench ablation``; see ``gfocal bench ablation --help`` for the options.
"""

import sys

from gfocal.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["bench", "ablation", *sys.argv[1:]]))
