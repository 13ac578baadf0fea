"""Command-line interface: argument parsing and printing only; nothing imports it."""

import os

# OpenMP threads that spin while waiting collapse when anything else wants a core (our own
# data-loading workers included): on 2 cores a training step ran 7x slower. Passive waiting
# must be chosen before torch loads its OpenMP runtime; an explicit user setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
