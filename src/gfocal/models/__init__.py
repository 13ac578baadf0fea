"""Detector assembly: backbone+FPN, the GFL head, ATSS assignment, losses, post-processing, named configs."""

from gfocal.models.config import ModelConfig
from gfocal.models.detector import GFLDetector
from gfocal.models.factory import (
    MODELS,
    build_detector,
    gfl_nano,
    gfl_resnet18_fpn,
    gfl_resnet50_fpn,
    gfl_small,
    load_model,
)
from gfocal.models.weights import WeightsError, save_weights

__all__ = [
    "MODELS",
    "GFLDetector",
    "ModelConfig",
    "WeightsError",
    "build_detector",
    "gfl_resnet18_fpn",
    "gfl_resnet50_fpn",
    "gfl_nano",
    "gfl_small",
    "load_model",
    "save_weights",
]
