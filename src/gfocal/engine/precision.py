"""Mixed precision: the autocast context and, for fp16, the gradient scaler.

"auto" picks bf16 on CUDA devices that support it, fp16 on older CUDA devices
and fp32 on CPU (bf16 autocast is slower than fp32 on most CPUs without AMX;
ask for "bf16" explicitly where it pays). The model computes its losses in
float32 itself, so only the forward pass runs in the lower precision.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import ContextManager, Literal

import torch

__all__ = ["resolve_precision", "autocast_factory", "make_grad_scaler"]

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(precision: str, device: torch.device) -> Literal["fp32", "bf16", "fp16"]:
    """Turn "auto" into a concrete precision for ``device``."""
    if precision != "auto":
        return precision  # type: ignore[return-value]
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def autocast_factory(precision: str, device: torch.device) -> Callable[[], ContextManager[None]]:
    """A zero-argument callable returning a fresh autocast context (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext
    dtype = _DTYPES[precision]
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


def make_grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler | None:
    """A loss scaler for fp16 (whose gradients underflow without one); ``None`` otherwise."""
    return torch.amp.GradScaler(device.type) if precision == "fp16" else None
