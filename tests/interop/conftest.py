"""mmdetection parity tests (marked ``mmdet``): skipped where mmdetection is not importable, never under CI.

mmdetection is not a dependency; ``.ci/install_mmdet`` installs it into a folder of its own and
``.ci/run`` runs the ``mmdet`` tests with that folder on ``PYTHONPATH``, after the main suite.
Under ``CI=true``:

- without mmdetection (the main suite), the parity tests are deselected, not skipped; a run of
  only them then collects nothing, which pytest (exit 5) and so CI count as a failure;
- with mmdetection, a parity test that skips (an import or a feature missing) fails instead.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

MMDET_AVAILABLE = importlib.util.find_spec("mmdet") is not None


def _under_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if MMDET_AVAILABLE:
        return
    parity = [item for item in items if item.get_closest_marker("mmdet")]
    if _under_ci():
        items[:] = [item for item in items if not item.get_closest_marker("mmdet")]
        config.hook.pytest_deselected(items=parity)
        return
    skip = pytest.mark.skip(
        reason="mmdetection is not installed (optional; .ci/install_mmdet DIR, then PYTHONPATH=DIR)"
    )
    for item in parity:
        item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if _under_ci() and report.skipped and item.get_closest_marker("mmdet"):
        report.outcome = "failed"
        report.longrepr = f"{item.nodeid}: an mmdetection parity test skipped under CI=true ({report.longrepr})"
