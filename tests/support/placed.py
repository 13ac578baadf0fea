"""Detector outputs that place exactly the boxes a test means: Dirac boxes (stride-unit distances) at chosen locations."""

import torch

from gfocal.models import ModelConfig
from gfocal.models.box_coding import DiracBoxes
from gfocal.models.grid import location_grid
from gfocal.models.postprocess import postprocess_image
from gfocal.ops import box_to_distance

NUM_CLASSES = 2
IMAGE_SIZE = (512, 512)


def grid_of(*shapes):
    """Levels of strides 8, 16, ... with these (height, width) cells."""
    return location_grid(list(shapes), ModelConfig(num_classes=1).strides[: len(shapes)], 0.0, torch.device("cpu"))


def outputs(grid, placed):
    """Scores [A, C] and Dirac outputs [A, 4] putting ``(location, box, label, score)`` at those locations.

    Every other location scores 0 (and keeps a zero-size box at its point).
    """
    scores = torch.zeros(grid.points.shape[0], NUM_CLASSES)
    boxes = torch.zeros(grid.points.shape[0], 4)
    for location, box, label, score in placed:
        scores[location, label] = score
        distances = box_to_distance(grid.points[location], torch.tensor(box, dtype=torch.float32))
        boxes[location] = distances / grid.strides[location]
    return scores, boxes


def detect(config, grid, placed):
    """``postprocess_image`` of the placed boxes (``config`` a Dirac-box model of NUM_CLASSES classes)."""
    scores, boxes = outputs(grid, placed)
    return postprocess_image(config, DiracBoxes(), scores, None, boxes, grid, IMAGE_SIZE)
