"""Training checkpoints: atomic writes, safe loads and the random-number-generator state.

A checkpoint is a plain dict of tensors and Python data (model, optimizer,
schedule, EMA, scaler, iteration, sampler and RNG states, the resolved config),
saved with ``torch.save`` and read back by :func:`gfocal.weights_file.load_torch_file`
(``weights_only=True``), so loading never runs pickled code and fails as every weights file
does, with a :class:`~gfocal.weights_file.WeightsError`. Writes are atomic (``gfocal.fileio``):
a crash or a full disk leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gfocal.fileio import atomic_write
from gfocal.weights_file import WeightsError, load_torch_file

__all__ = [
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "capture_rng_state",
    "restore_rng_state",
]


class CheckpointError(WeightsError):
    """A checkpoint could not be written, or the file read is no gfocal training checkpoint; the message names the
    file. (An unreadable file is the plain :class:`WeightsError` of every weights file.)"""


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write ``state`` atomically to ``path``; raises :class:`CheckpointError` naming the file on failure."""
    try:
        return atomic_write(path, lambda temporary: torch.save(state, temporary))
    except OSError as error:
        raise CheckpointError(
            f"could not write checkpoint {path}: {error.strerror or error}; the previous file is unchanged"
        ) from error


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors and plain data only).

    Raises:
        WeightsError: the file is missing or unreadable; CheckpointError (one) when it is another kind of file.
    """
    state = load_torch_file(path, "checkpoint", map_location)
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path}: not a gfocal training checkpoint (no 'model' entry)")
    return state


def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy, torch CPU and CUDA generator states, as plain data and tensors."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": pos,
            "has_gauss": has_gauss,
            "gauss": gauss,
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    random.setstate(_as_tuple(state["python"]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(value: Any) -> Any:
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value
