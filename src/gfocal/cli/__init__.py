"""Command-line interface: argument parsing and printing only; nothing imports it."""

import os

# OpenMP threads that spin long while waiting collapse when anything else wants a core (our own
# data-loading workers included): with one busy core beside it, a training step on 2 cores ran 9x
# slower with libgomp's default spin. Never spinning (OMP_WAIT_POLICY=PASSIVE) costs 20% on an idle
# machine; a short spin keeps the idle speed and most of the robustness (measured in
# docs/performance.md). Must be set before torch loads its OpenMP runtime; a user's setting wins.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "10000")
