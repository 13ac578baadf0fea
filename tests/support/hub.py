"""Stand-ins for torchvision's ImageNet files: a randomly initialised network's state dict placed where torch hub
caches a weights enum's file, so that loading "by name" runs offline with every key and shape of the real one."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from gfocal.models.pretrained import hub_checkpoint_path


def place_in_cache(weights, network: nn.Module) -> tuple[Path, dict[str, Tensor]]:
    """``network``'s state dict saved at the torch hub path of ``weights`` (a torchvision weights enum member)."""
    state = network.state_dict()
    path = hub_checkpoint_path(weights.url)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path, state
