"""The robustness suite reuses the engine tests' stand-in trainer (run_standin.py, standin.py)."""

import sys
from pathlib import Path

ENGINE_TESTS = Path(__file__).parents[1] / "engine"
if str(ENGINE_TESTS) not in sys.path:  # run_standin.py and standin.py, reused by the fault-injection tests
    sys.path.insert(0, str(ENGINE_TESTS))
