"""Weights read through ``torch.load`` (``.pth``): weights_only, and clear errors for bad files."""

import pickle

import pytest
import torch

from gfocal.models import WeightsError, gfl_small
from gfocal.weights_file import read_tensors


def small_state():
    torch.manual_seed(0)
    return gfl_small(2, min_size=64, max_size=64).state_dict()


def test_pth_state_dict_round_trips(tmp_path):
    state = small_state()
    path = tmp_path / "model.pth"
    torch.save({"state_dict": state, "meta": {"epoch": 3}}, path)
    loaded = read_tensors(path)
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)
    gfl_small(2, min_size=64, max_size=64, weights=path)  # loads into the model


def test_truncated_pth_gives_a_clear_error(tmp_path):
    path = tmp_path / "model.pth"
    torch.save(small_state(), path)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(WeightsError, match="model.pth.*cannot read"):
        read_tensors(path)


def test_pth_with_pickled_code_is_refused_not_executed(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("executed!",))

    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"weight": Payload()}, f)
    with pytest.raises(WeightsError, match="evil.pth"):
        read_tensors(path)


def test_garbage_file_gives_a_clear_error(tmp_path):
    path = tmp_path / "noise.pth"
    path.write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(WeightsError, match="noise.pth"):
        read_tensors(path)
