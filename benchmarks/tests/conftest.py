"""The benchmarks' own tests: the scripts import each other by module name (``from common import ...``), as
when run from their folder, so that folder goes on ``sys.path``. Nothing under ``tests/`` imports them."""

import sys
from pathlib import Path

BENCHMARKS = str(Path(__file__).resolve().parents[1])
if BENCHMARKS not in sys.path:
    sys.path.insert(0, BENCHMARKS)
