"""The training configuration: one typed, frozen object, loadable from YAML and ``key=value`` overrides.

The defaults are the small-data recipe (``"default"`` of :data:`gfocal.engine.recipes.RECIPES`, where the
other named recipes live, the paper's among them). ``batch_size`` is the *total* batch over all processes
(as ultralytics' ``batch``); the learning rate actually used is ``lr * batch / 16``, ``batch`` being the
batch the run trains with (``batch_size``, or the whole training set when it holds fewer images).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from gfocal.engine.recipes import RECIPES
from gfocal.models.variants import VARIANTS
from gfocal.strict import check_field_names

__all__ = ["TrainConfig", "load_config", "parse_overrides"]


Precision = Literal["auto", "fp32", "bf16", "fp16"]
Schedule = Literal["step", "cosine"]
Optimizer = Literal["sgd", "adamw"]
ClassMap = Literal["by_name", "by_order"]


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on; saved as ``config.yaml`` beside each checkpoint.

    Attributes:
        model: name of a factory in ``gfocal.models.MODELS``, or "auto": ``gfl_nano`` on a CPU (a
            model that trains usefully there in minutes; ``gfl_small`` with ``backbone_weights``, since
            ImageNet weights do not fit gfl_nano's half-width body), the paper's ``gfl_resnet50_fpn`` on a GPU.
        model_overrides: keyword arguments passed to that factory.
        variant: a detector or variant of :data:`gfocal.models.variants.VARIANTS` by id (``retinanet``,
            ``fcos-gfl``, ``tood``, ``atss-anchor``, ...): its model options, under ``model_overrides`` (which
            win where both set one). "": the model's own (GFL on ATSS's assignment).
        image_size: the longer side of the network input in pixels (stored with the weights);
            for a model whose sizes differ (the paper's 1333 x 800), the shorter side scales
            with it. None: the model's own.
        train_data, val_data: dataset paths for ``gfocal.data.load_dataset``; ``val_data``
            may be empty (no evaluation). ``train_images``/``val_images``: optional image folders.
            ``train_split``/``val_split``: the split to read from a YOLO data yaml or a VOC folder's
            ImageSets (empty: the reader's default).
        multiscale: ``(lo, hi)``: each batch's network input size (longer side) is drawn from this
            range, in multiples of 32; None keeps the model's size.
        scale_range: ``(lo, hi)`` zoom factors of the zoom-and-crop augmentation (None: off).
        mosaic: share of training samples tiled 2 x 2 from four images.
        min_visible: a box cut by a crop (or a tile) to less than this share of its area is dropped.
        tile: train on random tiles of this many pixels cut from the training images
            (:class:`gfocal.data.tiles.TileDataset`), and validate on whole images predicted on tiles
            (:class:`gfocal.tiling.TiledDetector`); for images much larger than the network input. None: off.
        tile_overlap: overlap of the validation tiles, and of the tiling that sets how many tiles an
            epoch draws from each image.
        tile_object_bias: share of training tiles centred on an object.
        eval_max_detections: detections per image that count in evaluation (COCO's 100; more for dense scenes).
        hflip, vflip: probabilities of a random horizontal / vertical flip during training.
        photometric: random colour jitter during training (``color_jitter``, ``grayscale``).
        color_jitter: ``(brightness, contrast, saturation, hue)`` strengths of the jitter: factors drawn in
            ``[1 - s, 1 + s]`` as torchvision's ``ColorJitter``, the hue turned by up to ``±hue`` turns.
            The default is ultralytics' (no contrast); 0 leaves that property alone.
        grayscale: probability that a training image loses its colour (with ``photometric``): for photographs
            whose colours differ between sites, seasons or cameras.
        epochs: passes over the training set; None (only with a time budget) plans the run to fill
            the budget.
        batch_size: images per optimiser step, summed over all processes. A training set with fewer
            usable images trains with all of them per step (rounded down to a multiple of the number of
            processes), with a logged warning; ``config.yaml`` keeps the requested value and the
            ``"setup"`` row of ``metrics.jsonl`` records the one used (``batch_size``,
            ``requested_batch_size``, ``train_images``, ``base_lr``).
        optimizer: "sgd" (momentum, weight decay on every parameter, as the paper) or "adamw"
            (no weight decay on normalisation weights and biases).
        lr: learning rate for a total batch of 16 images; scaled linearly with the batch used
            (``lr * batch / 16``).
        momentum, weight_decay: SGD momentum (AdamW's beta1), and weight decay.
        warmup_iters, warmup_ratio: linear warm-up from ``warmup_ratio * lr`` to ``lr``, at most a
            fifth of a run planned or squeezed by a time budget.
        schedule: "step" (x ``step_gamma`` at each epoch in ``step_epochs``) or "cosine"
            (to ``min_lr_ratio * lr`` at the end). ``step_epochs`` left as None is the paper's
            recipe scaled to ``epochs``: steps after 8/12 and 11/12 of them ((8, 11) for 12 epochs).
        clip_grad_norm: maximum L2 norm of all gradients; ``None`` disables clipping.
        ema, ema_decay: keep an exponential moving average of the weights (evaluated and
            exported in place of the raw weights when on).
        eval_interval: evaluate every this many epochs (and always after the last one); 0 = only at
            the end. In a run that fills a time budget, evaluation is planned by time instead.
        eval_share: in a run that fills a time budget, the share of the budget that evaluations
            before the final one may take.
        checkpoint_interval: also save ``last.pt`` every this many iterations; 0 = only at epoch ends.
            At an epoch end ``last.pt`` is saved after an evaluation, at the end of the run, and
            otherwise only when a minute has passed since it was last saved (an epoch of a small
            set is a few steps); a killed run loses at most the steps since then.
        log_interval: write a training row to ``metrics.jsonl`` every this many iterations.
        loggers: trackers that record the run besides ``metrics.jsonl`` (``gfocal.engine.loggers.TRACKERS``):
            "tensorboard" (``OUT/tensorboard``), "mlflow" (``MLFLOW_TRACKING_URI`` or ``OUT/mlruns``); "csv"
            (``OUT/results.csv``, a row per evaluation) is always on. Each needs its extra installed
            (``pip install "gfocal[tensorboard]"``).
        patience: stop early once this many evaluations in a row did not improve the best validation AP
            (``model_best.safetensors`` keeps the best weights, ``model.safetensors`` the last); 0 or None: off.
            It counts evaluations, so ``eval_interval`` (or, in a run that fills a time budget, the
            evaluations planned by time) sets how many epochs that is. With a time budget the schedule is
            still planned to fill it: a run that stops early ends before its learning rate has decayed.
        seed: seeds the model initialisation, the data order and the augmentations.
        workers: data-loading worker processes per training process.
        device: "auto" (CUDA when available), "cpu", "cuda" or "cuda:N".
        precision: autocast dtype (see ``gfocal.models.precision``): "auto" is bf16 (fp16 with loss
            scaling where bf16 is missing) on CUDA, bf16 on CPUs with native bf16, else fp32.
        channels_last: store convolution weights and activations channels-last (default: with bf16 on
            an AMX CPU it is what makes bf16 fast, 3.9x a float32 R50 training step instead of 1.6x).
        compile: ``torch.compile`` the backbone and head (``gfocal.models.precision.compile_network``).
            The first step compiles: about a minute for gfl_small on 2 CPU cores, which then trains
            12% faster. Worth it for long runs at a fixed input size, not for short ones.
        time_budget_minutes: wall-clock budget of the run, final evaluation and save included. With
            ``epochs`` None the run is planned to fill it; with ``epochs`` it is a cap that
            compresses the schedule when the epochs would not fit.
        out_dir: folder for checkpoints, ``config.yaml``, ``metrics.jsonl``, evaluation JSON and plots.
        resume: "" (start fresh), "auto" (``out_dir/last.pt`` if present) or a checkpoint path.
        weights: a pretrained detector to start from (``gfocal.engine.pretrained.read_pretrained``): a gfocal
            ``.safetensors`` file, a gfocal training checkpoint or an mmdetection GFL ``.pth``. With ``model``
            "auto" its architecture is built; every tensor whose name and shape fit is loaded, and the class
            rows of the output layer are matched by class name (``weights_class_map``).
        weights_class_map: "by_name" (checkpoint rows of the dataset's class names, in any order; other
            classes start fresh) or "by_order" (checkpoint class i is dataset class i: for a checkpoint whose
            classes are unnamed, with as many classes as the dataset).
        backbone_weights: ImageNet (or other) weights of the body (ResNet, MobileNetV3): a file, or a torchvision weights
            name (``DEFAULT``, ``IMAGENET1K_V1``, ``ResNet50_Weights.IMAGENET1K_V2``) read from the torch hub
            cache, downloaded there when missing. The body then trains with frozen BatchNorm and stem.
        teacher: localization distillation (:mod:`gfocal.models.distillation`): a trained detector in any form
            ``weights`` reads, predicting edge distributions at the student's strides (any backbone, width,
            input size or reg_max), whose distributions the student learns beside its own losses. Its classes
            are matched to the dataset's as ``weights`` matches them. "" : no distillation.
        unlabelled: a folder of images without annotations mixed into the training batches (needs a
            ``teacher``): only distillation trains on them, around the teacher's confident detections.
        ld_temperature, ld_weight: LD's temperature and the weight of ``loss_ld`` on the student's positives
            (mmdetection's LD configs: 10 and 0.25).
        ld_vlr_weight, ld_vlr_alpha: weight of ``loss_ld_vlr`` on the valuable localization region (0: off) and
            the region's lower DIoU bound as a share of the ATSS threshold (LD's paper: 0.25 and 0.25).
        ld_cls_weight: weight of ``loss_ld_cls``, the teacher's joint scores as soft class targets (0: off).
        ld_pseudo_score: on ``unlabelled`` images, the teacher's detections scoring at least this stand in
            for the ground truth that places the regions.
    """

    model: str = "auto"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    variant: str = ""
    image_size: int | None = None
    train_data: str = ""
    train_images: str = ""
    val_data: str = ""
    val_images: str = ""
    train_split: str = ""
    val_split: str = ""
    multiscale: tuple[int, ...] | None = None
    scale_range: tuple[float, ...] | None = (0.5, 1.5)
    mosaic: float = 0.5
    min_visible: float = 0.2
    tile: int | None = None
    tile_overlap: float = 0.2
    tile_object_bias: float = 0.75
    eval_max_detections: int = 100
    hflip: float = 0.5
    vflip: float = 0.0
    photometric: bool = True
    color_jitter: tuple[float, ...] = (0.4, 0.0, 0.7, 0.015)
    grayscale: float = 0.0
    epochs: int | None = 100
    batch_size: int = 16
    optimizer: Optimizer = "adamw"
    lr: float = 0.002
    momentum: float = 0.9
    weight_decay: float = 0.05
    warmup_iters: int = 100
    warmup_ratio: float = 0.001
    schedule: Schedule = "cosine"
    step_epochs: tuple[int, ...] | None = None
    step_gamma: float = 0.1
    min_lr_ratio: float = 0.01
    clip_grad_norm: float | None = 35.0
    ema: bool = True
    ema_decay: float = 0.9998
    eval_interval: int = 1
    eval_share: float = 0.1
    checkpoint_interval: int = 0
    log_interval: int = 10
    loggers: tuple[str, ...] = ()
    patience: int | None = None
    seed: int = 0
    workers: int = 2
    device: str = "auto"
    precision: Precision = "auto"
    channels_last: bool = True
    compile: bool = False
    time_budget_minutes: float | None = None
    out_dir: str = "runs/train"
    resume: str = ""
    weights: str = ""
    weights_class_map: ClassMap = "by_name"
    backbone_weights: str = ""
    teacher: str = ""
    unlabelled: str = ""
    ld_temperature: float = 10.0
    ld_weight: float = 0.25
    ld_vlr_weight: float = 0.25
    ld_vlr_alpha: float = 0.25
    ld_cls_weight: float = 0.0
    ld_pseudo_score: float = 0.5

    def __post_init__(self) -> None:
        for name, value in typing.get_type_hints(TrainConfig).items():
            object.__setattr__(self, name, _coerce(getattr(self, name), value, name))
        positive = {
            "batch_size": self.batch_size,
            "lr": self.lr,
            "log_interval": self.log_interval,
            "epochs": 1 if self.epochs is None else self.epochs,
            "image_size": self.image_size or 32,
            "tile": self.tile or 32,
            "eval_max_detections": self.eval_max_detections,
        }
        non_negative = {
            "warmup_iters": self.warmup_iters,
            "weight_decay": self.weight_decay,
            "workers": self.workers,
            "eval_interval": self.eval_interval,
            "checkpoint_interval": self.checkpoint_interval,
            "patience": self.patience or 0,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ValueError(f"TrainConfig.{name} must be > 0, got {value}")
        for name, value in non_negative.items():
            if value < 0:
                raise ValueError(f"TrainConfig.{name} must be >= 0, got {value}")
        if not 0 < self.warmup_ratio <= 1:
            raise ValueError(f"TrainConfig.warmup_ratio must be in (0, 1], got {self.warmup_ratio}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"TrainConfig.ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.time_budget_minutes is not None and self.time_budget_minutes <= 0:
            raise ValueError(f"TrainConfig.time_budget_minutes must be > 0 or None, got {self.time_budget_minutes}")
        if self.epochs is None and self.time_budget_minutes is None:
            raise ValueError("TrainConfig.epochs may only be None (fill the time budget) with a time_budget_minutes")
        if self.epochs is not None:
            self._check_step_epochs(self.epochs)
        for name in ("multiscale", "scale_range"):
            value = getattr(self, name)
            if value is not None and (len(value) != 2 or not 0 < value[0] <= value[1]):
                raise ValueError(f"TrainConfig.{name} must be (lo, hi) with 0 < lo <= hi, or None; got {value}")
        if not 0 <= self.tile_overlap < 1:
            raise ValueError(f"TrainConfig.tile_overlap must be in [0, 1), got {self.tile_overlap}")
        if len(self.color_jitter) != 4 or min(self.color_jitter) < 0 or self.color_jitter[3] > 0.5:
            raise ValueError(
                "TrainConfig.color_jitter must be (brightness, contrast, saturation, hue), each >= 0 and hue <= 0.5 "
                f"turns; got {self.color_jitter}"
            )
        for name in ("mosaic", "min_visible", "tile_object_bias", "hflip", "vflip", "eval_share", "grayscale"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"TrainConfig.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.weights and (self.backbone_weights or self.model_overrides.get("backbone_weights")):
            raise ValueError(
                "TrainConfig.weights and backbone_weights both set: the detector's weights hold a "
                "backbone already; keep one of them"
            )
        if self.unlabelled and not self.teacher:
            raise ValueError("TrainConfig.unlabelled needs a teacher: only distillation trains on unlabelled images")
        if self.unlabelled and self.tile is not None:
            raise ValueError("TrainConfig.unlabelled does not combine with tile (unlabelled images are not tiled)")
        if self.variant and self.variant not in VARIANTS:
            raise ValueError(f"TrainConfig.variant: unknown {self.variant!r}; choose from {', '.join(VARIANTS)}")
        if self.clip_grad_norm is not None and self.clip_grad_norm <= 0:
            raise ValueError(f"TrainConfig.clip_grad_norm must be > 0 or None, got {self.clip_grad_norm}")

    @property
    def variant_overrides(self) -> dict[str, Any]:
        """The model options of the run: its variant's, then ``model_overrides`` over them."""
        return {**(VARIANTS[self.variant].overrides if self.variant else {}), **self.model_overrides}

    def _check_step_epochs(self, epochs: int) -> None:
        if self.step_epochs is None:
            scaled = sorted({max(1, round(epochs * 8 / 12)), max(1, round(epochs * 11 / 12))})
            object.__setattr__(self, "step_epochs", tuple(scaled))
        if list(self.step_epochs) != sorted(self.step_epochs) or any(not 0 < e <= epochs for e in self.step_epochs):
            raise ValueError(
                f"TrainConfig.step_epochs must be increasing epochs in 1..{epochs}, got {self.step_epochs}"
            )

    @classmethod
    def from_recipe(cls, recipe: str, **values: Any) -> TrainConfig:
        """The named recipe of :data:`RECIPES` with some fields set (e.g. ``from_recipe("paper", epochs=24)``);
        ``model_overrides`` are merged into the recipe's, key by key."""
        if recipe not in RECIPES:
            raise ValueError(f"unknown recipe {recipe!r}; available: {', '.join(RECIPES)}")
        base = RECIPES[recipe].values
        model_overrides = {**base.get("model_overrides", {}), **values.get("model_overrides", {})}
        return cls.from_dict({**base, **values, "model_overrides": model_overrides})

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from plain data (as read from YAML); an unknown key is an error naming close matches."""
        check_field_names(TrainConfig, values, "training config key")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML/JSON-ready data (tuples become lists)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def replace(self, **changes: Any) -> TrainConfig:
        check_field_names(TrainConfig, changes, "training config key")
        return dataclasses.replace(self, **changes)


def parse_overrides(overrides: typing.Iterable[str]) -> dict[str, Any]:
    """Parse ``key=value`` strings; values are read as YAML scalars/lists (``8``, ``true``, ``null``, ``[8, 11]``).

    ``model_overrides.KEY=VALUE`` sets one entry of ``model_overrides``.
    """
    parsed: dict[str, Any] = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"override {item!r} is not of the form key=value")
        value = yaml.safe_load(text) if text.strip() else ""
        head, dot, sub = key.partition(".")
        check_field_names(TrainConfig, [head], "training config key")
        if dot:
            if head != "model_overrides":
                raise ValueError(f"override {item!r}: only model_overrides takes dotted keys")
            parsed.setdefault("model_overrides", {})[sub] = value
        else:
            parsed[key] = value
    return parsed


def load_config(
    path: str | Path | None = None,
    overrides: typing.Iterable[str] = (),
    recipe: str | None = None,
    fields: typing.Mapping[str, Any] | None = None,
) -> TrainConfig:
    """The ``recipe``'s values, updated by the YAML file at ``path`` (if any), then by ``fields``
    (typed values, e.g. from CLI flags: taken as they are, never parsed), then by ``key=value`` overrides
    (values parsed as YAML).

    ``recipe`` None is "default", from scratch and from pretrained weights alike: on
    ``benchmarks/transfer.py`` fine-tuning with it scored as well as with the "finetune" recipe's halved rate
    (docs/transfer.md), so the rate does not change behind the user's back.
    """
    values: dict[str, Any] = {}
    if path is not None:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: a training config must be a YAML mapping, got {type(loaded).__name__}")
        values.update(loaded)
    check_field_names(TrainConfig, fields or {}, "training config key")
    values.update(fields or {})
    extra = parse_overrides(overrides)
    if "model_overrides" in extra:
        extra["model_overrides"] = {**values.get("model_overrides", {}), **extra["model_overrides"]}
    values.update(extra)
    return TrainConfig.from_recipe(recipe or "default", **values)


def _coerce(value: Any, annotation: Any, name: str) -> Any:
    """Convert ``value`` (e.g. parsed from YAML) to ``annotation``; raise naming the field when impossible."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        return _coerce(value, next(a for a in args if a is not type(None)), name)
    if origin is Literal:
        if value not in args:
            raise ValueError(f"TrainConfig.{name} must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if origin is tuple:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            items = [items]  # "step_epochs=8" means (8,)
        return tuple(_coerce(v.strip() if isinstance(v, str) else v, args[0], name) for v in items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"TrainConfig.{name} must be a mapping, got {value!r}")
        return dict(value)
    if annotation is bool:
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        if not isinstance(value, bool):
            raise ValueError(f"TrainConfig.{name} must be true or false, got {value!r}")
        return value
    if annotation in (int, float, str):
        if isinstance(value, bool) or (annotation is int and isinstance(value, float) and not value.is_integer()):
            raise ValueError(f"TrainConfig.{name} must be {annotation.__name__}, got {value!r}")
        try:
            return annotation(value)
        except (TypeError, ValueError):
            raise ValueError(f"TrainConfig.{name} must be {annotation.__name__}, got {value!r}") from None
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
