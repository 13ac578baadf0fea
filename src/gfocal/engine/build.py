"""Building a run's parts from its configuration: the model for the device, the datasets, the optimiser.

One place maps :class:`~gfocal.engine.config.TrainConfig` fields to constructors
(``model``/``image_size`` to a detector, the augmentation fields to the data
pipeline, ``optimizer`` to SGD or AdamW).
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from gfocal.engine.config import TrainConfig

__all__ = [
    "TrainData",
    "TrainSetupError",
    "resolve_model_name",
    "build_model",
    "build_data",
    "build_optimizer",
    "training_augmentation",
    "unlabelled_images",
    "validation_network",
]


logger = logging.getLogger(__name__)

# Decoded training images kept per data-loading process: a few hundred 400 px tiles, not a large set.
_TRAIN_IMAGE_CACHE_BYTES = 256 * 2**20


class TrainSetupError(ValueError):
    """The run cannot start as configured: the config does not fit the data, the model or the checkpoint to resume."""


@dataclass
class TrainData:
    """The datasets of a run.

    Attributes:
        train: yields ``(uint8 image [3,H,W], {"boxes" float32 [M,4] xyxy, "labels" int64 [M], ...})``.
        collate: turns a list of samples into ``(list[Tensor], list[dict])``.
        val: like ``train``, targets also holding ``image_id`` (index into ``val_records.images``),
            ``orig_size`` (h, w) and ``scale``; None disables evaluation.
        val_records: the ``DatasetRecords`` behind ``val`` (the ground truth for COCO evaluation).
    """

    train: Dataset
    collate: Callable[[list[Any]], Any]
    val: Dataset | None = None
    val_records: Any = None


def resolve_model_name(name: str, device: torch.device, imagenet_body: bool = False) -> str:
    """``"auto"`` is ``gfl_nano`` on a CPU (trains usefully in minutes) and the paper's ``gfl_resnet50_fpn`` on a GPU.

    With ``imagenet_body`` (``backbone_weights`` given) a CPU gets ``gfl_small`` instead: gfl_nano's
    half-width ResNet-18 has no ImageNet weights, gfl_small's full-width one takes torchvision's.
    """
    if name != "auto":
        return name
    if device.type != "cpu":
        return "gfl_resnet50_fpn"
    return "gfl_small" if imagenet_body else "gfl_nano"


def build_model(
    config: TrainConfig, class_names: list[str], device: torch.device | None = None, architecture: Any = None
) -> nn.Module:
    """The detector named by ``config.model`` (resolved for ``device``) for ``class_names`` (label i is ``class_names[i]``).

    ``architecture`` (the ``ModelConfig`` of pretrained weights) is built instead when ``config.model`` is
    "auto", with the dataset's classes, ``model_overrides`` and ``image_size`` applied; the weights are not loaded here.
    """
    from gfocal.models import MODELS, WeightsError

    if architecture is not None and config.model == "auto":
        return _pretrained_architecture(config, class_names, architecture)
    imagenet_body = bool(config.backbone_weights or config.model_overrides.get("backbone_weights"))
    name = resolve_model_name(config.model, device or torch.device("cpu"), imagenet_body=imagenet_body)
    if name not in MODELS:
        close = difflib.get_close_matches(name, list(MODELS), n=3)
        raise TrainSetupError(
            f"unknown model {name!r}; available: auto, {', '.join(MODELS)}"
            + (f" (did you mean {', '.join(close)}?)" if close else "")
        )
    overrides = config.variant_overrides
    if config.image_size is not None:
        overrides.update(_sizes_for(MODELS[name], config.image_size))
    if config.backbone_weights:
        overrides["backbone_weights"] = config.backbone_weights
    try:
        return MODELS[name](num_classes=len(class_names), class_names=tuple(class_names), **overrides)
    except WeightsError:  # backbone weights that cannot be found or read: their own message says what to do
        raise
    except ValueError as error:  # ModelConfig's checks of model_overrides
        raise TrainSetupError(f"model {name} with model_overrides {overrides}: {error}") from error


def _pretrained_architecture(config: TrainConfig, class_names: list[str], architecture: Any) -> nn.Module:
    from gfocal.models import build_detector
    from gfocal.models.config import image_size_options

    overrides = config.variant_overrides
    if config.image_size is not None:
        overrides.update(image_size_options(architecture.min_size, architecture.max_size, config.image_size))
    try:
        model_config = architecture.replace(num_classes=len(class_names), class_names=tuple(class_names), **overrides)
    except (ValueError, TypeError) as error:
        raise TrainSetupError(
            f"the architecture of {config.weights} with model_overrides {overrides}: {error}"
        ) from error
    return build_detector(model_config)


def _sizes_for(factory: Callable[..., nn.Module], image_size: int) -> dict[str, int]:
    """``min_size``/``max_size`` for a longer side of ``image_size``, keeping the factory's own ratio of the two."""
    from gfocal.models.config import ModelConfig, image_size_options

    defaults = {**ModelConfig(num_classes=1).to_dict(), **factory.defaults}  # type: ignore[attr-defined]
    return image_size_options(defaults["min_size"], defaults["max_size"], image_size)


def training_augmentation(config: TrainConfig) -> Any:
    """The ``gfocal.data.transforms.Augmentation`` a config asks for."""
    from gfocal.data.transforms import Augmentation

    return Augmentation(
        scale_range=config.scale_range,
        min_visible=config.min_visible,
        hflip=config.hflip,
        vflip=config.vflip,
        color=config.photometric,
        color_jitter=config.color_jitter,
        grayscale=config.grayscale,
    )


def build_data(config: TrainConfig, train_records: Any, model: nn.Module) -> TrainData:
    """Datasets for ``train_records`` (augmented, resized by the model's own rule; random tiles of them with
    ``config.tile``) and ``config.val_data`` (as decoded)."""
    from gfocal.data import DetectionDataset, collate_detection, load_dataset
    from gfocal.data.mosaic import Mosaic
    from gfocal.data.tiles import TileDataset
    from gfocal.data.transforms import build_transforms
    from gfocal.data.unlabelled import UnlabelledImages, WithUnlabelled

    sizes = (model.config.min_size, model.config.max_size)  # type: ignore[attr-defined]
    transforms = build_transforms(*sizes, training_augmentation(config))
    if config.tile is not None:
        train: Dataset = TileDataset(
            train_records, config.tile, transforms, config.tile_overlap, config.tile_object_bias, config.min_visible
        )
    else:
        train = DetectionDataset(train_records, transforms, train=True, cache_bytes=_TRAIN_IMAGE_CACHE_BYTES)
    if config.mosaic > 0:
        side = min(sizes)  # a square the model's rule maps to itself
        train = Mosaic(train, (side, side), config.mosaic, config.min_visible)
    if config.unlabelled:
        train = WithUnlabelled(train, UnlabelledImages(unlabelled_images(config.unlabelled), transforms))
    if not config.val_data:
        return TrainData(train, collate_detection)
    val_records = load_dataset(config.val_data, images_dir=config.val_images or None, split=config.val_split or None)
    val_records.require_boxes("evaluate against")  # else every AP is undefined: fail now, not after training
    if list(val_records.class_names) != list(train_records.class_names):
        raise TrainSetupError(
            f"{config.val_data}: classes {val_records.class_names} differ from the training set's "
            f"{train_records.class_names}"
        )
    val = DetectionDataset(val_records, None, train=False)  # the model resizes, exactly as in gfocal predict
    return TrainData(train, collate_detection, val, val_records)


def unlabelled_images(folder: str) -> list[Path]:
    """The readable images under ``folder`` (searched recursively); an unreadable one is left out with a warning
    naming it, and a folder with none is a :class:`TrainSetupError`."""
    from gfocal.data.image_io import ImageProblem, probe_image
    from gfocal.engine.predict import find_images

    if not Path(folder).is_dir():
        raise TrainSetupError(f"unlabelled images: {folder} is not a folder")
    try:
        paths = find_images(folder)
    except FileNotFoundError as error:
        raise TrainSetupError(f"unlabelled images: {error}") from None
    readable, problems = [], []
    for path in paths:
        try:
            probe_image(path)
            readable.append(path)
        except ImageProblem as problem:
            problems.append(f"{path}: {problem.detail}")
    if problems:
        logger.warning("%d unlabelled images left out: %s", len(problems), "; ".join(problems[:3]))
    if not readable:
        raise TrainSetupError(f"unlabelled images: none of the {len(paths)} images under {folder} is readable")
    return readable


def validation_network(model: nn.Module, config: TrainConfig) -> nn.Module:
    """What evaluation during training runs: the model, or with ``config.tile`` the model on tiles of each
    whole validation image, merged by the distribution-aware merge (NMS for a model without distributions)."""
    if config.tile is None:
        return model
    from gfocal.tiling import TiledDetector, TilingConfig

    merge = "dist" if model.head.box_coding.has_distributions else "nms"  # type: ignore[union-attr]
    return TiledDetector(model, TilingConfig(config.tile, config.tile_overlap, merge, batch_size=config.batch_size))


def build_optimizer(config: TrainConfig, module: nn.Module, lr: float) -> torch.optim.Optimizer:
    """SGD over every trainable parameter (the paper's), or AdamW without decay on norms and biases."""
    trainable = [p for p in module.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(trainable, lr=lr, momentum=config.momentum, weight_decay=config.weight_decay)
    # One-dimensional parameters are biases, norm weights and the head's per-level scales.
    decayed = [p for p in trainable if p.ndim > 1]
    undecayed = [p for p in trainable if p.ndim <= 1]
    groups = [{"params": decayed, "weight_decay": config.weight_decay}, {"params": undecayed, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(config.momentum, 0.999))
