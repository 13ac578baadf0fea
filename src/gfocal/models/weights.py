"""Weights files: safetensors with the model's config inside, so a file alone rebuilds its model.

Everything read with ``torch.load`` uses ``weights_only=True``; nothing here unpickles code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import Tensor

from gfocal.fileio import atomic_write
from gfocal.models.config import ModelConfig

if TYPE_CHECKING:
    from gfocal.models.detector import GFLDetector

__all__ = ["WeightsError", "save_weights", "read_state_dict", "state_dict_of", "read_config", "load_state_into"]

_FORMAT = "gfocal-weights-1"


class WeightsError(ValueError):
    """A weights file is unreadable, truncated, or does not fit the model."""


def save_weights(model: GFLDetector, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write the model's float32 weights and config to a safetensors file, atomically."""
    state = {
        k: v.detach().float().contiguous() if v.is_floating_point() else v.contiguous()
        for k, v in model.state_dict().items()
    }
    info = {"format": _FORMAT, "config": json.dumps(model.config.to_dict()), **(metadata or {})}
    atomic_write(path, lambda temporary: save_file(state, temporary, metadata=info))
    return Path(path)


def read_config(path: str | Path) -> ModelConfig:
    """The ModelConfig stored in a gfocal weights file."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError) as error:
        raise WeightsError(f"{path}: not a readable safetensors weights file ({error})") from error
    if metadata.get("format") != _FORMAT or "config" not in metadata:
        raise WeightsError(
            f"{path}: no gfocal model config in this file; it holds bare weights "
            "(build the model yourself, or convert it with 'gfocal convert')"
        )
    try:
        return ModelConfig.from_dict(json.loads(metadata["config"]))
    except (ValueError, TypeError) as error:  # bad JSON, unknown or invalid options
        raise WeightsError(f"{path}: the model config stored in this file is invalid ({error})") from error


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Tensors of a safetensors file or of a ``torch.save``-d state dict (loaded with weights_only=True)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as error:
            raise WeightsError(f"{path}: truncated or corrupt safetensors file ({error})") from error
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for truncated or foreign files
        raise WeightsError(
            f"{path}: cannot read it as a PyTorch state dict ({type(error).__name__}: {error})"
        ) from error
    return state_dict_of(state, path)


def state_dict_of(loaded: Any, source: str | Path) -> dict[str, Tensor]:
    """The tensors of a ``torch.load``-ed object: itself, or its ``state_dict`` or ``model`` entry."""
    for key in ("state_dict", "model"):
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
    if not isinstance(loaded, dict) or not all(isinstance(v, Tensor) for v in loaded.values()):
        raise WeightsError(f"{source}: expected a state dict of tensors")
    return loaded


def load_state_into(model: GFLDetector, state: dict[str, Tensor], source: str | Path) -> None:
    """Load a full detector state dict, with one error listing every key that does not fit."""
    expected = model.state_dict()
    missing = sorted(k for k in expected if k not in state)
    unexpected = sorted(k for k in state if k not in expected)
    mis_shaped = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    if missing or unexpected or mis_shaped:
        lines = [
            f"{source}: weights do not fit this model ({model.config.num_classes} classes, reg_max={model.config.reg_max})"
        ]
        for title, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", mis_shaped)):
            if keys:
                lines.append(f"  {title} ({len(keys)}): " + ", ".join(keys[:8]) + (" ..." if len(keys) > 8 else ""))
        raise WeightsError("\n".join(lines))
    # NaN weights would load fine and then predict nothing, silently.
    non_finite = sorted(k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all())
    if non_finite:
        raise WeightsError(
            f"{source}: {len(non_finite)} tensors hold NaN or infinite values "
            f"(e.g. {', '.join(non_finite[:3])}); the run that wrote them diverged"
        )
    model.load_state_dict(state)
