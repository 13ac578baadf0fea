"""The training configuration: one typed, frozen object, loadable from YAML and ``key=value`` overrides.

Defaults follow PAPER.md "Training recipe" (SGD lr 0.01 per 16 images, momentum
0.9, weight decay 1e-4, 500 linear warm-up iterations, 12 epochs with the
learning rate x0.1 at epochs 8 and 11). ``batch_size`` is the *total* batch
over all processes (as ultralytics' ``batch``); the learning rate actually used
is ``lr * batch / 16``, ``batch`` being the batch the run trains with (``batch_size``,
or the whole training set when it holds fewer images).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

__all__ = ["TrainConfig", "load_config", "parse_overrides"]

Precision = Literal["auto", "fp32", "bf16", "fp16"]
Schedule = Literal["step", "cosine"]


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on; saved as ``config.yaml`` beside each checkpoint.

    Attributes:
        model: name of a factory in ``gfocal.models.MODELS`` (e.g. ``"gfl_resnet50_fpn"``).
        model_overrides: keyword arguments passed to that factory.
        train_data, val_data: dataset paths for ``gfocal.data.load_dataset``; ``val_data``
            may be empty (no evaluation). ``train_images``/``val_images``: optional image folders.
            ``train_split``/``val_split``: the split to read from a YOLO data yaml or a VOC folder's
            ImageSets (empty: the reader's default).
        max_size, min_size: resize limits in pixels (longer side <= max_size, shorter side -> min_size);
            None takes the model's (``model.config.max_size``/``min_size``, 1333/800 for the paper's model).
        multiscale: ``(lo, hi)`` range of the shorter side for multi-scale training; None for a single scale.
        hflip: probability of a random horizontal flip during training.
        photometric: random brightness/contrast/saturation jitter during training.
        epochs: number of passes over the training set.
        batch_size: images per optimiser step, summed over all processes. A training set with fewer
            usable images trains with all of them per step (rounded down to a multiple of the number of
            processes), with a logged warning; ``config.yaml`` keeps the requested value and the
            ``"setup"`` row of ``metrics.jsonl`` records the one used (``batch_size``,
            ``requested_batch_size``, ``train_images``, ``base_lr``).
        lr: learning rate for a total batch of 16 images; scaled linearly with the batch used
            (``lr * batch / 16``).
        momentum, weight_decay: SGD parameters.
        warmup_iters, warmup_ratio: linear warm-up from ``warmup_ratio * lr`` to ``lr``.
        schedule: "step" (x ``step_gamma`` at each epoch in ``step_epochs``) or "cosine"
            (to ``min_lr_ratio * lr`` at the end). ``step_epochs`` left as None is the paper's
            recipe scaled to ``epochs``: steps after 8/12 and 11/12 of them ((8, 11) for 12 epochs).
        clip_grad_norm: maximum L2 norm of all gradients; ``None`` disables clipping.
        ema, ema_decay: keep an exponential moving average of the weights (evaluated and
            saved as the "best" model when on).
        eval_interval: evaluate every this many epochs (and always after the last one); 0 = only at the end.
        checkpoint_interval: also save ``last.pt`` every this many iterations; 0 = only at epoch ends.
        log_interval: write a training row to ``metrics.jsonl`` every this many iterations.
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
        time_budget_minutes: stop within this wall-clock budget, compressing the LR schedule to fit.
        out_dir: folder for checkpoints, ``config.yaml``, ``metrics.jsonl``, evaluation JSON and plots.
        resume: "" (start fresh), "auto" (``out_dir/last.pt`` if present) or a checkpoint path.
    """

    model: str = "gfl_resnet50_fpn"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    train_data: str = ""
    train_images: str = ""
    val_data: str = ""
    val_images: str = ""
    train_split: str = ""
    val_split: str = ""
    max_size: int | None = None
    min_size: int | None = None
    multiscale: tuple[int, ...] | None = None
    hflip: float = 0.5
    photometric: bool = False
    epochs: int = 12
    batch_size: int = 16
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_iters: int = 500
    warmup_ratio: float = 0.001
    schedule: Schedule = "step"
    step_epochs: tuple[int, ...] | None = None
    step_gamma: float = 0.1
    min_lr_ratio: float = 0.01
    clip_grad_norm: float | None = 35.0
    ema: bool = False
    ema_decay: float = 0.9998
    eval_interval: int = 1
    checkpoint_interval: int = 0
    log_interval: int = 10
    seed: int = 0
    workers: int = 2
    device: str = "auto"
    precision: Precision = "auto"
    channels_last: bool = True
    compile: bool = False
    time_budget_minutes: float | None = None
    out_dir: str = "runs/train"
    resume: str = ""

    def __post_init__(self) -> None:
        for name, value in typing.get_type_hints(TrainConfig).items():
            object.__setattr__(self, name, _coerce(getattr(self, name), value, name))
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr, "log_interval": self.log_interval}
        non_negative = {
            "warmup_iters": self.warmup_iters, "weight_decay": self.weight_decay, "workers": self.workers,
            "eval_interval": self.eval_interval, "checkpoint_interval": self.checkpoint_interval,
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
        if self.step_epochs is None:
            scaled = sorted({max(1, round(self.epochs * 8 / 12)), max(1, round(self.epochs * 11 / 12))})
            object.__setattr__(self, "step_epochs", tuple(scaled))
        if list(self.step_epochs) != sorted(self.step_epochs) or any(not 0 < e <= self.epochs for e in self.step_epochs):
            raise ValueError(f"TrainConfig.step_epochs must be increasing epochs in 1..{self.epochs}, got {self.step_epochs}")
        if self.time_budget_minutes is not None and self.time_budget_minutes <= 0:
            raise ValueError(f"TrainConfig.time_budget_minutes must be > 0 or None, got {self.time_budget_minutes}")
        if self.multiscale is not None and len(self.multiscale) != 2:
            raise ValueError(f"TrainConfig.multiscale must be (lo, hi) or None, got {self.multiscale}")
        if self.clip_grad_norm is not None and self.clip_grad_norm <= 0:
            raise ValueError(f"TrainConfig.clip_grad_norm must be > 0 or None, got {self.clip_grad_norm}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from plain data (as read from YAML); an unknown key is an error naming close matches."""
        for key in values:
            _check_known(key)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML/JSON-ready data (tuples become lists)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def replace(self, **changes: Any) -> TrainConfig:
        for key in changes:
            _check_known(key)
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
        _check_known(head)
        if dot:
            if head != "model_overrides":
                raise ValueError(f"override {item!r}: only model_overrides takes dotted keys")
            parsed.setdefault("model_overrides", {})[sub] = value
        else:
            parsed[key] = value
    return parsed


def load_config(path: str | Path | None = None, overrides: typing.Iterable[str] = ()) -> TrainConfig:
    """Defaults, updated by the YAML file at ``path`` (if any), then by ``key=value`` overrides."""
    values: dict[str, Any] = {}
    if path is not None:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: a training config must be a YAML mapping, got {type(loaded).__name__}")
        values.update(loaded)
    extra = parse_overrides(overrides)
    if "model_overrides" in extra:
        extra["model_overrides"] = {**values.get("model_overrides", {}), **extra["model_overrides"]}
    values.update(extra)
    return TrainConfig.from_dict(values)


def _check_known(key: str) -> None:
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    if key not in names:
        close = difflib.get_close_matches(key, names, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known keys: {', '.join(names)}"
        raise ValueError(f"unknown training config key {key!r}{hint}")


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
