"""Exponential moving average (EMA) of model weights, with YOLOX's warm-up of the decay.

``ema = d * ema + (1 - d) * weights`` after every optimiser step, with
``d(u) = decay * (1 - exp(-u / ramp))`` for the u-th update: early updates
follow the fast-changing weights closely, later ones average over roughly
``1 / (1 - decay)`` steps. Integer buffers (e.g. BatchNorm's step counter) are copied.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

__all__ = ["ModelEMA"]


class ModelEMA:
    """An averaged copy of a model, kept in eval mode with gradients off.

    Args:
        model: the model being trained (unwrapped, not the DDP wrapper).
        decay: asymptotic decay ``d`` in [0, 1).
        ramp: updates over which the decay warms up (YOLOX uses 2000).
    """

    def __init__(self, model: nn.Module, decay: float = 0.9998, ramp: float = 2000.0) -> None:
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay
        self.ramp = ramp
        self.updates = 0

    def decay_at(self, updates: int) -> float:
        """Decay used for the ``updates``-th update (1-based)."""
        return self.decay * (1.0 - math.exp(-updates / self.ramp))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards ``model``'s current weights."""
        self.updates += 1
        d = self.decay_at(self.updates)
        current = model.state_dict()
        for name, averaged in self.module.state_dict().items():
            if averaged.dtype.is_floating_point:
                averaged.lerp_(current[name].detach(), 1.0 - d)
            else:
                averaged.copy_(current[name])

    def state_dict(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])
