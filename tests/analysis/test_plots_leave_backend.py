"""Drawing the library's plots neither loads pyplot nor changes the user's matplotlib backend."""

import subprocess
import sys

import pytest

CODE = """
import sys, tempfile
import matplotlib
matplotlib.use("svg")
import gfocal.analysis
from gfocal.engine.metrics import plot_metrics
rows = [{"kind": "train", "iteration": i, "loss": 1.0 / (i + 1)} for i in range(3)]
rows += [{"kind": "eval", "epoch": 1, "AP": 0.1, "AP50": 0.2, "AP75": 0.05}]
written = plot_metrics(rows, tempfile.mkdtemp())
print(len(written), matplotlib.get_backend(), "matplotlib.pyplot" in sys.modules)
"""


@pytest.mark.slow
def test_plots_keep_the_users_backend_and_never_load_pyplot():
    result = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["2", "svg", "False"]
