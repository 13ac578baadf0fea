"""Tiny fixtures for the analysis tests: a synthetic COCO set and an untrained small model's weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gfocal.data.synthetic import make_synthetic_dataset
from gfocal.models import gfl_small, save_weights

SIZE = 64


@pytest.fixture(scope="session")
def tiny_coco(tmp_path_factory) -> Path:
    """4 images of 64 px with 1-3 shapes each, some blurred or occluded (COCO json)."""
    root = tmp_path_factory.mktemp("tiny_coco")
    return make_synthetic_dataset(
        root, num_images=4, image_size=SIZE, size_range=(12, 40), objects_per_image=(1, 3), blur_fraction=0.5, seed=3
    )


@pytest.fixture(scope="session")
def untrained_weights(tmp_path_factory) -> Path:
    """An untrained gfl_small for 4 classes (the synthetic set's) at 64 px."""
    torch.manual_seed(0)
    model = gfl_small(4, min_size=SIZE, max_size=SIZE, class_names=("rectangle", "ellipse", "triangle", "cross"))
    path = tmp_path_factory.mktemp("weights") / "untrained.safetensors"
    save_weights(model, path)
    return path
