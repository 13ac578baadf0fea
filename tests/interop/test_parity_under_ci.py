"""The rules of conftest.py here: under CI=true a parity test never silently skips.

Each case runs pytest in a subprocess on a copy of that conftest and one ``mmdet``-marked test that
skips; an empty ``mmdet`` package on PYTHONPATH stands for an installed mmdetection.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PARITY_TEST = """
import pytest

pytestmark = pytest.mark.mmdet

def test_parity():
    pytest.skip("a feature mmdetection lacks")
"""


def run_pytest(tmp_path: Path, ci: bool, mmdet_installed: bool) -> subprocess.CompletedProcess:
    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_parity.py").write_text(PARITY_TEST)
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    mmdet: parity\n")
    site = tmp_path / "site"
    if mmdet_installed:
        (site / "mmdet").mkdir(parents=True)
        (site / "mmdet" / "__init__.py").write_text("")
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTHONPATH")}
    env["PYTHONPATH"] = str(site)
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "ci, mmdet_installed, exit_code, summary",
    [
        (False, False, 0, "1 skipped"),  # a developer without mmdetection: skipped, with the reason
        (True, False, 5, "1 deselected"),  # CI's main suite: not collected; a parity-only run then fails
        (True, True, 1, "1 failed"),  # CI's parity step: a skip is a failure
        (False, True, 0, "1 skipped"),
    ],
)
def test_a_parity_skip_fails_under_ci(tmp_path, ci, mmdet_installed, exit_code, summary):
    result = run_pytest(tmp_path, ci, mmdet_installed)
    assert result.returncode == exit_code, result.stdout + result.stderr
    assert summary in result.stdout.splitlines()[-1]
