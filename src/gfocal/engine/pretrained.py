"""Reading the pretrained detector a run starts from (``TrainConfig.weights``), whatever wrote it.

Three kinds of file (:func:`gfocal.weights_file.read_weights_file` reads any and tells which it is):

- a gfocal weights file (``.safetensors``, with its ModelConfig and class names inside);
- a gfocal training checkpoint (``last.pt``/``best.pt``): its EMA weights when it kept an EMA
  (what ``model.safetensors`` would hold), else its raw weights;
- an mmdetection GFL checkpoint (``.pth``, read with ``weights_only=True``), its keys mapped by
  :mod:`gfocal.interop.mmdet`; any other state dict is tried as one, and refused naming what it lacks. Its class names are those of its ``meta`` (``dataset_meta.classes``,
  mmdetection 3.x; ``CLASSES``, 2.x) when it has them; otherwise 80 classes are read as COCO's (what
  every GFL of mmdetection's model zoo was trained on) and another count is unnamed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

from gfocal.models import ModelConfig
from gfocal.models.weights import config_of
from gfocal.weights_file import WeightsFile, read_weights_file

__all__ = ["COCO_CLASSES", "PretrainedDetector", "read_pretrained"]

COCO_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
)  # fmt: skip
"""The 80 COCO detection classes in mmdetection's label order (``CocoDataset.METAINFO``)."""


@dataclass
class PretrainedDetector:
    """A pretrained detector's tensors (gfocal names), architecture and class names.

    Attributes:
        source: the file's path.
        kind: "gfocal weights", "gfocal training checkpoint" or "mmdetection checkpoint".
        config: the architecture it was trained with.
        state: its tensors, under gfocal's state-dict names.
        class_names: the names of its classes in label order; None when the file does not say.
        notes: what was assumed while reading it, for the run's log.
    """

    source: str
    kind: str
    config: ModelConfig
    state: dict[str, Tensor]
    class_names: tuple[str, ...] | None
    notes: list[str] = field(default_factory=list)


def read_pretrained(path: str | Path) -> PretrainedDetector:
    """Read a gfocal weights file, a gfocal training checkpoint or an mmdetection GFL checkpoint.

    Raises:
        WeightsError: the file is missing, unreadable, or none of the three.
    """
    file = read_weights_file(path, role="pretrained weights")
    if file.kind == "gfocal training checkpoint":
        return _from_training_checkpoint(file)
    if file.kind in ("gfocal weights", "safetensors"):
        config = config_of(file)
        return PretrainedDetector(str(file.path), file.kind, config, file.tensors, config.class_names)
    return _from_mmdet(file)


def _from_training_checkpoint(file: WeightsFile) -> PretrainedDetector:
    config = ModelConfig.from_dict(file.content["model_config"])
    ema = file.content.get("ema")
    state = ema["module"] if ema else file.tensors
    note = f"{file.path}: a gfocal training checkpoint; its {'EMA' if ema else 'raw (no EMA kept)'} weights are used"
    return PretrainedDetector(str(file.path), file.kind, config, state, config.class_names, [note])


def _from_mmdet(file: WeightsFile) -> PretrainedDetector:
    from gfocal.interop.mmdet import mmdet_config_from_state, mmdet_to_gfocal_state

    path = file.path
    raw = {k.removeprefix("module."): v for k, v in file.tensors.items()}
    config = mmdet_config_from_state(raw, str(path))  # raises WeightsError naming what is not a GFL
    state = mmdet_to_gfocal_state(raw, config.reg_max, str(path))
    kind = "mmdetection checkpoint"
    stored = _mmdet_class_names(file.content)
    if stored is not None and len(stored) == config.num_classes:
        note = f"{path}: class names from the checkpoint's meta ({_first(stored)})"
        return PretrainedDetector(str(path), kind, config, state, stored, [note])
    unusable = (
        f"its meta names {len(stored)} classes for {config.num_classes} outputs, so they are ignored"
        if stored is not None
        else "it stores no class names"
    )
    if config.num_classes == len(COCO_CLASSES):
        note = f"{path}: {unusable}; its 80 classes are taken as COCO's ({_first(COCO_CLASSES)})"
        return PretrainedDetector(str(path), kind, config, state, COCO_CLASSES, [note])
    note = (
        f"{path}: {unusable} and its {config.num_classes} classes are not COCO's 80: they are unnamed, so no "
        "class row is kept unless weights_class_map=by_order (checkpoint class i = dataset class i; needs "
        f"{config.num_classes} dataset classes)"
    )
    return PretrainedDetector(str(path), kind, config, state, None, [note])


def _mmdet_class_names(loaded: Any) -> tuple[str, ...] | None:
    """The class names in an mmdetection checkpoint's meta: ``dataset_meta["classes"]`` (3.x) or ``CLASSES`` (2.x)."""
    meta = loaded.get("meta") if isinstance(loaded, dict) else None
    if not isinstance(meta, dict):
        return None
    dataset_meta = meta.get("dataset_meta")
    names = dataset_meta.get("classes") if isinstance(dataset_meta, dict) else meta.get("CLASSES")
    if isinstance(names, (list, tuple)) and names and all(isinstance(n, str) for n in names):
        return tuple(names)
    return None


def _first(names: tuple[str, ...]) -> str:
    return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
