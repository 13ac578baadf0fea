"""Test-session set-up shared by every test folder."""

import os

# Tests start several torch processes at once (DDP, data-loader workers, subprocess trainers) on
# few cores; spinning OpenMP threads then slow each other down many times over. Must be set
# before torch loads its OpenMP runtime, which conftest precedes.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
