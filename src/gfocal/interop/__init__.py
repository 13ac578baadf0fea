"""Interoperability with other detection codebases: import their checkpoints as gfocal models."""

from gfocal.interop.mmdet import MMDET_PREPROCESSING, from_mmdet, mmdet_config_from_state, mmdet_to_gfocal_state

__all__ = ["MMDET_PREPROCESSING", "from_mmdet", "mmdet_config_from_state", "mmdet_to_gfocal_state"]
