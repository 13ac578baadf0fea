"""Interoperability with other detection codebases: import their checkpoints as gfocal models, and write ours in their format."""

from gfocal.interop.mmdet import MMDET_PREPROCESSING, from_mmdet, mmdet_config_from_state, mmdet_to_gfocal_state
from gfocal.interop.mmdet_export import save_mmdet_checkpoint, to_mmdet_state

__all__ = [
    "MMDET_PREPROCESSING",
    "from_mmdet",
    "mmdet_config_from_state",
    "mmdet_to_gfocal_state",
    "save_mmdet_checkpoint",
    "to_mmdet_state",
]
