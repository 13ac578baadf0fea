"""Reading a weights file of any kind: the one place gfocal opens one, and its one error (:class:`WeightsError`).

A file's kind is told by its content, not its name:

=================================  ==========================================================================
``"gfocal weights"``               safetensors with gfocal's format tag and a ModelConfig in its metadata
                                   (``gfocal.models.save_weights``)
``"safetensors"``                  any other safetensors file: bare tensors
``"gfocal training checkpoint"``   ``torch.save``-d dict with ``model`` and ``model_config`` (``last.pt``)
``"mmdetection checkpoint"``       ``torch.save``-d dict of a detector's ``bbox_head.*`` tensors, usually
                                   under ``state_dict`` beside mmengine's ``meta``
``"state dict"``                   any other ``torch.save``-d dict of tensors, or one under ``state_dict``
                                   or ``model`` (torchvision's ImageNet files, a bare detector state dict)
=================================  ==========================================================================

Everything ``torch.save``-d is read with ``torch.load(weights_only=True)``: nothing here runs pickled code. A
file that pickles code (an mmdetection 3.x training checkpoint pickles mmengine objects) is refused in one line
that names the first object torch refused and how to strip the file of it. Every message is one line that starts
with the file's path. What the tensors mean (mapping mmdetection's names, a model's config) is the caller's.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import safe_open
from torch import Tensor

__all__ = ["GFOCAL_FORMAT", "WeightsError", "WeightsFile", "load_torch_file", "read_weights_file", "read_tensors"]

#: The format tag in the metadata of a gfocal weights file.
GFOCAL_FORMAT = "gfocal-weights-1"


class WeightsError(ValueError):
    """A weights file is missing, unreadable, of another kind than needed, or does not fit the model.

    The message is one line starting with the file's path (a model that does not fit lists its tensors on
    the lines after it).
    """


@dataclass(frozen=True)
class WeightsFile:
    """A weights file, read.

    Attributes:
        path: where it was read from.
        kind: one of the kinds in the module's table.
        tensors: the model's tensors under the names the file gives them (a training checkpoint's raw model,
            an mmdetection checkpoint's ``state_dict``).
        metadata: a safetensors file's metadata (strings); empty for a ``torch.save``-d file.
        content: a ``torch.save``-d file's whole dict (a checkpoint's optimiser, EMA, mmdetection's ``meta``);
            empty for safetensors.
    """

    path: Path
    kind: str
    tensors: dict[str, Tensor]
    metadata: Mapping[str, str] = field(default_factory=dict)
    content: Mapping[str, Any] = field(default_factory=dict)


def read_weights_file(path: str | Path, role: str = "weights", with_tensors: bool = True) -> WeightsFile:
    """Read any weights file gfocal knows and tell its kind.

    Args:
        path: the file.
        role: what the caller wants it as, for the message when it is missing ("pretrained weights").
        with_tensors: False reads a safetensors file's metadata alone (``tensors`` is then empty); a
            ``torch.save``-d file is read whole either way.

    Raises:
        WeightsError: missing, unreadable, pickling code, or holding no tensors.
    """
    path = _existing(path, role)
    if _is_safetensors(path):
        return _read_safetensors(path, with_tensors)
    loaded = load_torch_file(path, role)
    if isinstance(loaded, dict) and isinstance(loaded.get("model_config"), dict) and "model" in loaded:
        return WeightsFile(path, "gfocal training checkpoint", _tensors(loaded["model"], path), content=loaded)
    tensors = _tensors(_unwrap(loaded), path)
    kind = (
        "mmdetection checkpoint"
        if any(k.startswith(("bbox_head.", "module.bbox_head.")) for k in tensors)
        else "state dict"
    )
    return WeightsFile(path, kind, tensors, content=loaded)


def read_tensors(path: str | Path) -> dict[str, Tensor]:
    """The tensors of any weights file (see :func:`read_weights_file`)."""
    return read_weights_file(path).tensors


def load_torch_file(path: str | Path, role: str = "weights", map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``, with torch's many errors turned into one line each.

    A safetensors file is named as such (it is no ``torch.save``-d file). ``role`` names what is missing.
    """
    path = _existing(path, role)
    if _is_safetensors(path):
        raise WeightsError(f"{path}: a safetensors weights file, not a torch.save-d {role} file")
    try:
        with warnings.catch_warnings():  # torch warns of pickle protocols it may not parse; the error says enough
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, EOFError... for refused or damaged files
        raise _unreadable(path, error) from None


def _unreadable(path: Path, error: Exception) -> WeightsError:
    """One line for what ``torch.load(weights_only=True)`` raised: the object it refused, or why it failed."""
    message = str(error)
    refused = re.search(r"Unsupported global: GLOBAL (\S+)", message)
    if refused:
        return WeightsError(
            f"{path}: cannot read it with torch.load(weights_only=True), which refuses the Python object it "
            f"pickles ({refused.group(1)}): unpickling it could run code; if you trust the file, load it with "
            "weights_only=False, torch.save only its 'state_dict' and 'meta' entries (an mmdetection checkpoint's "
            "tensors and class names) and pass that file"
        )
    # The unpickler's own reason, else the first line of torch's message (its messages run to several lines).
    detail = re.search(r"WeightsUnpickler error:\s*([^\n]+)", message)
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    reason = detail.group(1) if detail else (lines[0] if lines else "no message")
    return WeightsError(
        f"{path}: cannot read it with torch.load(weights_only=True) ({type(error).__name__}: {reason}): "
        "truncated, corrupt, or not a file torch.save wrote"
    )


def _existing(path: str | Path, role: str) -> Path:
    path = Path(path)
    if path.is_dir():
        raise WeightsError(f"{path}: a folder, not a {role} file")
    if not path.is_file():
        raise WeightsError(f"{path}: {role} file not found")
    return path


def _is_safetensors(path: Path) -> bool:
    """Named so, or starting as one does: its JSON header's length (8 bytes, little-endian), then ``{``."""
    if path.suffix == ".safetensors":
        return True
    with open(path, "rb") as handle:
        head = handle.read(9)
    return len(head) == 9 and head[8:] == b"{" and int.from_bytes(head[:8], "little") < path.stat().st_size


def _read_safetensors(path: Path, with_tensors: bool) -> WeightsFile:
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()} if with_tensors else {}  # noqa: SIM118
    except (SafetensorError, OSError) as error:
        raise WeightsError(f"{path}: not a readable safetensors weights file, truncated or corrupt ({error})") from None
    kind = "gfocal weights" if metadata.get("format") == GFOCAL_FORMAT else "safetensors"
    return WeightsFile(path, kind, tensors, metadata=metadata)


def _unwrap(loaded: Any) -> Any:
    """A state dict saved inside a dict: mmengine's ``state_dict``, or a ``model`` entry."""
    for key in ("state_dict", "model"):
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
    return loaded


def _tensors(loaded: Any, path: Path) -> dict[str, Tensor]:
    if not isinstance(loaded, dict) or not loaded or not all(isinstance(v, Tensor) for v in loaded.values()):
        raise WeightsError(f"{path}: expected a state dict of tensors, found {_describe(loaded)}")
    return loaded


def _describe(loaded: Any) -> str:
    if isinstance(loaded, dict):
        return (
            f"a dict of {len(loaded)} entries ({', '.join(map(str, list(loaded)[:5]))})" if loaded else "an empty dict"
        )
    return f"a {type(loaded).__name__}"
