"""The entry point's output: warnings and logged warnings as one ``warning: ...`` line each, set for the CLI only."""

import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image

from gfocal.cli.main import _LevelFormatter, main
from gfocal.models import gfl_small, save_weights
from support import files

SRC = Path(__file__).parents[2] / "src"


def run_gfocal(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.run(
        [sys.executable, "-m", "gfocal", *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_a_dataset_warning_prints_as_one_line_without_the_source_echo(tmp_path):
    Image.new("RGB", (32, 24)).save(tmp_path / "a.png")
    annotations = [files.box([2, 2, 8, 8], 1), files.box([2, 2, 8, 8], 2, image_id=7)]  # an orphan: one DatasetWarning
    files.coco(tmp_path / "d.json", images=[{"id": 1, "file_name": "a.png"}], annotations=annotations)
    torch.manual_seed(0)
    save_weights(gfl_small(1, min_size=64, max_size=64, class_names=("x",)), tmp_path / "w.safetensors")
    result = run_gfocal(
        "eval", "--weights", "w.safetensors", "--data", "d.json", "--workers", "0", "--precision", "fp32", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    warned = [line for line in result.stderr.splitlines() if "unknown image" in line]
    assert warned == [
        "warning: d.json: 1 annotations pointing to an unknown image (skipped). Examples: d.json, "
        "annotation id=2: image_id 7 is not in 'images'"
    ], result.stderr
    assert (
        "DatasetWarning" not in result.stderr and ".py:" not in result.stderr and "load_dataset(" not in result.stderr
    )


def test_the_warning_format_is_put_back_after_a_command(tmp_path):
    before = warnings.formatwarning
    assert main(["data", "synthetic", str(tmp_path / "syn"), "--num-train", "1", "--num-val", "1"]) == 0
    assert warnings.formatwarning is before


def test_logged_warnings_are_prefixed_like_python_warnings():
    formatter = _LevelFormatter("%(message)s")
    record = lambda level: logging.LogRecord("gfocal", level, __file__, 1, "2 images", None, None)  # noqa: E731
    assert [formatter.format(record(level)) for level in (logging.INFO, logging.WARNING, logging.ERROR)] == [
        "2 images",
        "warning: 2 images",
        "error: 2 images",
    ]


@pytest.mark.slow
def test_a_warning_in_a_data_loader_worker_prints_as_one_line_too():
    """Worker processes are forked (Linux) while the CLI's format is installed: they inherit it."""
    code = """if True:
        import warnings, torch
        from gfocal.cli.main import _readable_warnings
        class Warns(torch.utils.data.Dataset):
            def __len__(self): return 1
            def __getitem__(self, i):
                warnings.warn("from a worker")
                return i
        with _readable_warnings():
            list(torch.utils.data.DataLoader(Warns(), num_workers=1))
    """
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stderr == "warning: from a worker\n", result.stderr
