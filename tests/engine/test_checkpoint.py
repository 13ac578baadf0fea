import errno
import random

import numpy as np
import pytest
import torch

from gfocal.engine import checkpoint
from gfocal.engine.checkpoint import (
    CheckpointError,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from gfocal.weights_file import WeightsError


def test_round_trip(tmp_path):
    state = {"model": {"w": torch.arange(4.0)}, "iteration": 7, "config": {"step_epochs": [8, 11]}}
    save_checkpoint(tmp_path / "last.pt", state)
    loaded = load_checkpoint(tmp_path / "last.pt")
    assert loaded["iteration"] == 7 and loaded["config"] == {"step_epochs": [8, 11]}
    torch.testing.assert_close(loaded["model"]["w"], torch.arange(4.0))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left


def test_failed_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"model": {"w": torch.zeros(3)}, "iteration": 1})

    def full_disk(obj, temporary):
        with open(temporary, "wb") as handle:
            handle.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", full_disk)
    with pytest.raises(CheckpointError, match=r"last\.pt.*No space left.*previous file is unchanged"):
        save_checkpoint(path, {"model": {"w": torch.ones(3)}, "iteration": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["iteration"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_truncated_or_missing_file_is_a_clear_error(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"model": {"w": torch.randn(100)}})
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(
        WeightsError, match=r"last\.pt: cannot read it with torch\.load\(weights_only=True\) .*truncated"
    ):
        load_checkpoint(path)
    with pytest.raises(WeightsError, match=r"nope\.pt: checkpoint file not found"):
        load_checkpoint(tmp_path / "nope.pt")


def test_rng_state_round_trip_through_a_checkpoint(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    save_checkpoint(tmp_path / "c.pt", {"model": {}, "rng": capture_rng_state()})
    expected = (random.random(), np.random.rand(), torch.rand(1))
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    restore_rng_state(load_checkpoint(tmp_path / "c.pt")["rng"])
    assert (random.random(), np.random.rand()) == expected[:2] and torch.equal(torch.rand(1), expected[2])
