"""Shared fixtures' makings for the export tests: a model that detects a lot, and test images."""

import torch

from gfocal.models import gfl_small

# (batch, height, width): sizes the model keeps as they are (min_size 96, max_size 160),
# including ones that are not multiples of 32 (padded inside the graph).
SIZES = [(1, 96, 96), (3, 96, 150), (2, 90, 160)]


def busy_model(max_size=160, **overrides):
    """A small model whose random head gives many overlapping detections."""
    torch.manual_seed(0)
    model = gfl_small(3, min_size=96, max_size=max_size, score_threshold=0.3, **overrides).eval()
    with torch.no_grad():
        model.head.cls_out.bias.zero_()
        model.head.cls_out.weight.normal_(0, 0.1)
        model.head.box_out.weight.normal_(0, 0.05)
    return model


def images(batch, height, width, seed=0):
    """Float RGB images in 0-255, the exported graphs' input."""
    return torch.randint(0, 256, (batch, 3, height, width), generator=torch.Generator().manual_seed(seed)).float()
