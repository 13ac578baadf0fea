"""Atomic writes: all or nothing, and files readable like any other."""

import os
import stat

import pytest

from gfocal.fileio import atomic_write, atomic_write_bytes


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    path = atomic_write_bytes(tmp_path / "a.json", b"old")

    def fail(temporary):
        with open(temporary, "wb") as f:
            f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, fail)
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["a.json"]


def test_written_files_get_the_mode_a_plain_open_would_give(tmp_path):
    # mkstemp alone would leave 0600: a report nobody else on the team could read.
    path = atomic_write_bytes(tmp_path / "report.html", b"<html>")
    with open(tmp_path / "plain.html", "w"):
        pass
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE((tmp_path / "plain.html").stat().st_mode)
