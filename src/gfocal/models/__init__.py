"""Detector assembly: backbone+FPN, the GFL head, ATSS assignment, losses, post-processing, named configs."""

from gfocal.lazy import lazy_exports

# Each public name and the module that defines it, imported on first use (gfocal.lazy), as in gfocal.engine:
# the CLI reads gfocal.models.variants (plain data) for its help without loading torch.
_HOMES = {
    "ModelConfig": "config",
    "GFLDetector": "detector",
    "MODELS": "factory",
    "build_detector": "factory",
    "gfl_nano": "factory",
    "gfl_resnet18_fpn": "factory",
    "gfl_mobilenetv3_fpn": "factory",
    "gfl_resnet50_fpn": "factory",
    "gfl_resnet101_fpn": "factory",
    "gfl_resnet101_dcn_fpn": "factory",
    "gfl_resnext101_32x4d_fpn": "factory",
    "gfl_resnext101_32x4d_dcn_fpn": "factory",
    "gfl_small": "factory",
    "load_model": "factory",
    "WeightsError": "weights",
    "save_weights": "weights",
}

__all__ = sorted(_HOMES)

__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
