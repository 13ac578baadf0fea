"""gfocal weights files: safetensors with the model's config inside, so a file alone rebuilds its model.

Reading any weights file (and its one error, :class:`WeightsError`) is :mod:`gfocal.weights_file`'s; this module
writes gfocal's own and fits tensors into a detector.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import save_file
from torch import Tensor

from gfocal.fileio import atomic_write
from gfocal.models.config import ModelConfig
from gfocal.weights_file import GFOCAL_FORMAT, WeightsError, WeightsFile, read_weights_file

if TYPE_CHECKING:
    from gfocal.models.detector import GFLDetector

__all__ = ["WeightsError", "save_weights", "read_config", "config_of", "load_state_into"]


def save_weights(model: GFLDetector, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write the model's float32 weights and config to a safetensors file, atomically."""
    state = {
        k: v.detach().float().contiguous() if v.is_floating_point() else v.contiguous()
        for k, v in model.state_dict().items()
    }
    info = {"format": GFOCAL_FORMAT, "config": json.dumps(model.config.to_dict()), **(metadata or {})}
    atomic_write(path, lambda temporary: save_file(state, temporary, metadata=info))
    return Path(path)


def read_config(path: str | Path) -> ModelConfig:
    """The ModelConfig stored in a gfocal weights file."""
    return config_of(read_weights_file(path, with_tensors=False))


def config_of(file: WeightsFile) -> ModelConfig:
    """The ModelConfig a gfocal weights file stores; any other kind of file is an error saying what it holds."""
    if file.kind != "gfocal weights" or "config" not in file.metadata:
        raise WeightsError(
            f"{file.path}: no gfocal model config in this file; it holds bare weights ({file.kind}) "
            "(build the model yourself, or convert it with 'gfocal convert')"
        )
    try:
        return ModelConfig.from_dict(json.loads(file.metadata["config"]))
    except (ValueError, TypeError) as error:  # bad JSON, unknown or invalid options
        raise WeightsError(f"{file.path}: the model config stored in this file is invalid ({error})") from error


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
