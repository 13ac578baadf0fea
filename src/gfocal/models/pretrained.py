"""Starting from pretrained weights: a detector's tensors into a new model, and ImageNet bodies by name.

:func:`transfer_weights` loads every tensor of a pretrained detector whose name and shape
fit a freshly built one, and matches the class-specific output layer (``head.cls_out``,
one row per class) by class name. Shape letters: ``C`` classes of the new model, ``K``
classes of the checkpoint, ``F`` head channels.

:func:`resolve_backbone_weights` turns a torchvision weights name (``DEFAULT``,
``IMAGENET1K_V1``, ``ResNet50_Weights.IMAGENET1K_V2``) into the file in the torch hub
cache, downloading it there through torchvision's weights API when absent.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import Tensor, nn

from gfocal.weights_file import WeightsError

__all__ = ["CLASS_TENSORS", "TransferReport", "transfer_weights", "resolve_backbone_weights", "hub_checkpoint_path"]

#: The tensors with one row per class: the classification output conv.
CLASS_TENSORS = ("head.cls_out.weight", "head.cls_out.bias")


@dataclass
class TransferReport:
    """What :func:`transfer_weights` did, for the log (``lines``) and the run folder (``to_dict``).

    Attributes:
        source: the checkpoint's path or description.
        loaded: model tensors set from the checkpoint (class tensors included when any row was).
        class_rows: per model class, the checkpoint class its row came from (None: freshly initialised).
        reordered: some kept row moved to another position.
        left_initialised: model tensors the checkpoint does not hold, kept as built.
        unused: checkpoint tensors the model has no place for.
        notes: lines about the source (e.g. how class names were read) that precede the decisions.
    """

    source: str
    loaded: list[str] = field(default_factory=list)
    class_rows: dict[str, str | None] = field(default_factory=dict)
    reordered: bool = False
    left_initialised: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """One line per decision, for the log."""
        lines = [*self.notes, f"loaded {len(self.loaded)} tensors from {self.source}; {self._classes_line()}"]
        for title, keys in (
            ("model tensors not in the checkpoint, left as initialised", self.left_initialised),
            ("checkpoint tensors unused", self.unused),
        ):
            if keys:
                lines.append(f"{len(keys)} {title}: {_some(keys)}")
        return lines

    def _classes_line(self) -> str:
        kept = [name for name, origin in self.class_rows.items() if origin is not None]
        new = [name for name, origin in self.class_rows.items() if origin is None]
        total = len(self.class_rows)
        if not kept:
            return f"cls_out: re-initialised, no class taken from the checkpoint ({total} new: {_some(new)})"
        if not new:
            order = "rows reordered to the dataset's order" if self.reordered else "same order"
            return f"cls_out: all {total} classes from the checkpoint ({order})"
        return f"cls_out: {len(kept)} of {total} classes from the checkpoint ({_some(kept)}), {len(new)} new ({_some(new)})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "lines": self.lines(),
            "loaded": self.loaded,
            "class_rows": self.class_rows,
            "left_initialised": self.left_initialised,
            "unused": self.unused,
        }


def transfer_weights(
    model: nn.Module,
    state: Mapping[str, Tensor],
    checkpoint_classes: Sequence[str] | None,
    source: str,
    by_order: bool = False,
) -> TransferReport:
    """Load the tensors of ``state`` that fit ``model``; match the class rows of ``cls_out`` by name.

    Args:
        model: a freshly built detector (its ``config.class_names`` name its ``C`` classes); the rows
            of new classes keep the fresh head's initialisation (weights ~N(0, 0.01), prior-probability bias).
        state: the pretrained detector's tensors under gfocal names; ``head.cls_out.weight`` is
            ``[K, F, 3, 3]`` and ``head.cls_out.bias`` ``[K]``.
        checkpoint_classes: the names of the ``K`` checkpoint classes, or None when they are unknown.
        source: names the checkpoint in the report and in errors.
        by_order: take checkpoint class i as model class i (needs ``K == C``), whatever the names.

    Returns:
        The :class:`TransferReport`; ``model`` is updated in place.

    Raises:
        WeightsError: a tensor other than the class rows has another shape in the checkpoint (another
            ``reg_max``, channel count or depth), or ``by_order`` with another class count; the
            message names the tensors and how to fix it.
    """
    expected = model.state_dict()
    names = list(model.config.class_names or [f"class {i}" for i in range(model.config.num_classes)])
    report = TransferReport(source)
    _check_shapes(model, state, expected, source)
    report.left_initialised = sorted(k for k in expected if k not in state and not k.endswith("num_batches_tracked"))
    report.unused = sorted(k for k in state if k not in expected and not k.endswith("num_batches_tracked"))
    fitting = {k: v for k, v in state.items() if k in expected and k not in CLASS_TENSORS}
    rows = _class_rows(names, checkpoint_classes, state[CLASS_TENSORS[0]].shape[0], source, by_order)
    report.class_rows = {
        name: (checkpoint_classes[row] if checkpoint_classes else f"class {row}") if row is not None else None
        for name, row in zip(names, rows)
    }
    report.reordered = any(row is not None and row != c for c, row in enumerate(rows))
    with torch.no_grad():
        for key in CLASS_TENSORS:
            if any(row is not None for row in rows):
                fitting[key] = _take_rows(expected[key], state[key], rows)
        model.load_state_dict(fitting, strict=False)
    report.loaded = sorted(fitting)
    return report


def _check_shapes(model: nn.Module, state: Mapping[str, Tensor], expected: Mapping[str, Tensor], source: str) -> None:
    """Every shared tensor must have the model's shape; the class rows only beyond their first dimension."""

    def fits(key: str) -> bool:
        if key in CLASS_TENSORS:
            return state[key].shape[1:] == expected[key].shape[1:]
        return state[key].shape == expected[key].shape

    mis_shaped = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in state and not fits(k)
    ]
    if CLASS_TENSORS[0] not in state:
        raise WeightsError(f"{source}: no {CLASS_TENSORS[0]}; not a gfocal detector's weights")
    if mis_shaped:
        config = model.config
        raise WeightsError(
            f"{source}: {len(mis_shaped)} tensors do not fit the model ({config.backbone}, fpn_channels="
            f"{config.fpn_channels}, feat_channels={config.feat_channels}, stacked_convs={config.stacked_convs}, "
            f"reg_max={config.reg_max}): {_some(mis_shaped, 6)}. Leave out --model (and the model_overrides that change "
            "the architecture) to build the checkpoint's own architecture, or start from --backbone-weights"
        )


def _class_rows(
    names: list[str], checkpoint_classes: Sequence[str] | None, rows: int, source: str, by_order: bool
) -> list[int | None]:
    """For each model class, the checkpoint row holding it (None: a new class)."""
    if by_order:
        if rows != len(names):
            raise WeightsError(
                f"{source}: weights_class_map=by_order needs as many classes in the checkpoint ({rows}) "
                f"as in the dataset ({len(names)})"
            )
        return list(range(rows))
    if checkpoint_classes is None:
        return [None] * len(names)
    index = {name: i for i, name in enumerate(checkpoint_classes)}
    return [index.get(name) for name in names]


def _take_rows(fresh: Tensor, pretrained: Tensor, rows: list[int | None]) -> Tensor:
    """``fresh`` ([C, ...]) with row c replaced by ``pretrained[rows[c]]`` ([K, ...]) where rows[c] is not None."""
    out = fresh.clone()
    for c, row in enumerate(rows):  # C is a class count, not a hot path
        if row is not None:
            out[c] = pretrained[row]
    return out


def _some(items: Sequence[str], limit: int = 8) -> str:
    return ", ".join(items[:limit]) + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def hub_checkpoint_path(url: str) -> Path:
    """Where torch hub caches the file of ``url``: ``torch.hub.get_dir()/checkpoints/<file name>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def resolve_backbone_weights(spec: str | Path, backbone: str | None, hint: str = "") -> Path:
    """A local file for ``spec``: the path itself, or the torch hub file of a torchvision weights name.

    Args:
        spec: a file path, or a weights name of ``backbone``'s torchvision enum (``DEFAULT``,
            ``IMAGENET1K_V1``) or a full one (``ResNet50_Weights.IMAGENET1K_V2``).
        backbone: the torchvision model name of the body, e.g. ``"resnet50"``; None where torchvision has
            no weights for it (a file path is then the only choice).
        hint: why there are none and what to do instead, for the error when a name is asked of such a body.

    Returns:
        The path to read; a named file not yet in the cache is downloaded there first.

    Raises:
        WeightsError: ``spec`` is neither a file nor a weights name of ``backbone``, or the
            download failed (offline): the message names the file to place and where.
    """
    from torchvision.models import get_model_weights, get_weight

    path = Path(spec)
    if path.is_file():
        return path
    text = str(spec)
    if backbone is None:
        raise WeightsError(f"backbone weights {text!r}: no such file, and no torchvision weights by name here; {hint}")
    enum = get_model_weights(backbone)
    try:
        full_name = "." in text and path.suffix.lower() not in (".pth", ".pt", ".safetensors")
        weights = get_weight(text) if full_name else enum[text]
    except (KeyError, ValueError, AttributeError):
        raise WeightsError(
            f"backbone weights {text!r}: no such file, and not a torchvision weights name of {backbone} "
            f"(names: DEFAULT, {', '.join(w.name for w in enum)}, or {enum.__name__}.<name>)"
        ) from None
    if type(weights) is not enum:
        raise WeightsError(
            f"backbone weights {text!r} are {type(weights).__name__}, not weights of a {backbone} body "
            f"({enum.__name__})"
        )
    cached = hub_checkpoint_path(weights.url)
    if not cached.is_file():
        try:
            weights.get_state_dict(progress=True, check_hash=True)  # downloads into the torch hub cache
        except OSError as error:  # URLError, socket and HTTP errors are OSErrors
            raise WeightsError(
                f"backbone weights {text!r} ({type(weights).__name__}.{weights.name}): cannot download {weights.url} "
                f"({error}); offline, place that file at {cached} or pass its path to --backbone-weights"
            ) from None
    return cached
