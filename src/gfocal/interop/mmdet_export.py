"""Write a gfocal GFL detector as an mmdetection ``GFL`` checkpoint: the inverse of :func:`from_mmdet`.

The file holds what mmdetection's ``init_detector`` reads: ``{"meta": {"dataset_meta": {"classes":
(...)}}, "state_dict": {...}}`` (mmdetection 3.x's layout; 2.x kept ``meta["CLASSES"]``), the tensors under
mmdetection's key names (:func:`gfocal.interop.mmdet.gfocal_key_to_mmdet`) with its BatchNorm batch
counters and the Integral's bins. mmdetection's GFL is a full-width ResNet or ResNeXt (deformable stages included) + FPN (P3-P7, no ReLU before the
extra convs) + ``GFLHead`` (QFL, DFL, GroupNorm of 32 groups, locations at the cell corners); a detector
with other settings has no mmdetection twin and is refused.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor

from gfocal.fileio import atomic_write
from gfocal.interop.mmdet import gfocal_key_to_mmdet
from gfocal.models import GFLDetector, WeightsError

__all__ = ["to_mmdet_state", "save_mmdet_checkpoint"]

#: The ModelConfig fields mmdetection's GFL fixes, with its values (what from_mmdet assumes).
MMDET_GFL_FIELDS = {
    "backbone_width": 64,
    "strides": (8, 16, 32, 64, 128),
    "relu_before_extra_convs": False,
    "norm_groups": 32,
    "classification": "qfl",
    "box": "dfl",
    "dgqp": False,
    "point_offset": 0.0,
}


def to_mmdet_state(model: GFLDetector) -> dict[str, Tensor]:
    """``model``'s tensors as mmdetection's GFL state dict (copies; BatchNorm counters and ``integral.project`` added).

    Raises:
        WeightsError: the detector is not one mmdetection's GFL can hold; the message names the settings.
    """
    config = model.config
    other = [
        f"{name}={getattr(config, name)!r} (mmdetection's: {value!r})"
        for name, value in MMDET_GFL_FIELDS.items()
        if getattr(config, name) != value
    ]
    if not config.backbone.startswith(("resnet", "resnext")):
        other.insert(0, f"backbone={config.backbone!r} (mmdetection's GFL here: a ResNet or ResNeXt)")
    names = {key: gfocal_key_to_mmdet(key) for key in model.state_dict()}
    unmapped = sorted(key for key, name in names.items() if name is None)
    if other or unmapped:
        raise WeightsError(
            "this detector has no mmdetection GFL twin: "
            + "; ".join(
                [*other, *([f"tensors without an mmdetection name: {', '.join(unmapped)}"] if unmapped else [])]
            )
        )
    state = {names[key]: value.detach().clone() for key, value in model.state_dict().items()}
    for key in [k for k in state if k.startswith("backbone.") and k.endswith("running_var")]:
        # mmdetection's BatchNorm counts batches; a frozen BatchNorm has no counter of its own.
        state.setdefault(key.replace("running_var", "num_batches_tracked"), torch.tensor(0))
    state["bbox_head.integral.project"] = torch.linspace(0, config.reg_max, config.reg_max + 1)
    return state


def save_mmdet_checkpoint(model: GFLDetector, path: str | os.PathLike[str]) -> Path:
    """Write ``model`` as an mmdetection GFL checkpoint (``.pth``, written atomically); returns the path.

    The class names, when the model has them, go to ``meta["dataset_meta"]["classes"]``, where
    mmdetection and :func:`gfocal.engine.pretrained.read_pretrained` look for them.
    """
    checkpoint: dict[str, object] = {"state_dict": to_mmdet_state(model)}
    if model.config.class_names:
        checkpoint["meta"] = {"dataset_meta": {"classes": tuple(model.config.class_names)}}
    return atomic_write(path, lambda temporary: torch.save(checkpoint, temporary))
