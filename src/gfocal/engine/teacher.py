"""The teacher of a distillation run (``TrainConfig.teacher``): read, rebuilt for the dataset's classes, wrapped
around the student, and recorded so that a resumed run is sure to learn from the same file.

The teacher file is anything ``--weights`` reads (:func:`gfocal.engine.pretrained.read_pretrained`): a gfocal
weights file, a gfocal training checkpoint (its EMA weights when it kept one) or an mmdetection GFL checkpoint.
It is built with its own architecture and the dataset's classes, its class rows matched by name as
``--weights`` matches them (``weights_class_map``); classes it never learned keep scores near zero.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from gfocal.engine.build import TrainSetupError
from gfocal.engine.config import TrainConfig
from gfocal.engine.pretrained import read_pretrained
from gfocal.models import WeightsError
from gfocal.models.detector import GFLDetector
from gfocal.models.distillation import DistillationSettings, DistillingDetector, check_distillable
from gfocal.models.pretrained import transfer_weights

__all__ = ["Teacher", "load_teacher", "distillation_settings", "check_same_teacher", "file_sha256"]

logger = logging.getLogger(__name__)


@dataclass
class Teacher:
    """A teacher ready to wrap a student.

    Attributes:
        model: the teacher, with the student's classes, in eval mode, without gradients.
        known_classes (Tensor[C] bool): the student's classes the teacher file holds.
        record: ``{"path", "sha256"}``, saved in the run's checkpoints and checked on resume.
        lines: what was decided while reading it, for the log.
    """

    model: GFLDetector
    known_classes: Tensor
    record: dict[str, str]
    lines: list[str]

    def wrap(self, student: GFLDetector, settings: DistillationSettings) -> DistillingDetector:
        """The student trained with this teacher; the teacher follows it to its device and memory format."""
        return DistillingDetector(student, self.model, settings, self.known_classes)


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def distillation_settings(config: TrainConfig) -> DistillationSettings:
    """The ``ld_*`` fields of a config; out-of-range values raise :class:`TrainSetupError`."""
    try:
        return DistillationSettings(
            temperature=config.ld_temperature,
            weight=config.ld_weight,
            vlr_weight=config.ld_vlr_weight,
            vlr_alpha=config.ld_vlr_alpha,
            cls_weight=config.ld_cls_weight,
            pseudo_score=config.ld_pseudo_score,
        )
    except ValueError as error:
        raise TrainSetupError(f"TrainConfig: {error}") from error


def load_teacher(config: TrainConfig, student: GFLDetector) -> Teacher:
    """Read ``config.teacher`` and rebuild it for ``student``'s classes.

    Raises:
        TrainSetupError: the file is missing or unreadable, or cannot teach this student (it predicts no
            distributions, or at other strides); the message names the file and why.
    """
    path = Path(config.teacher)
    if not path.is_file():
        raise TrainSetupError(f"teacher {path}: file not found")
    try:
        pretrained = read_pretrained(path)
        names = student.class_names
        model = GFLDetector.from_config(pretrained.config.replace(num_classes=len(names), class_names=names))
        report = transfer_weights(
            model, pretrained.state, pretrained.class_names, str(path), config.weights_class_map == "by_order"
        )
        check_distillable(student.config, model.config)
    except (WeightsError, ValueError) as error:
        raise TrainSetupError(f"teacher {path}: {error}" if str(path) not in str(error) else str(error)) from error
    if report.left_initialised:  # built with its own architecture, a whole file fills it
        raise TrainSetupError(
            f"teacher {path}: the file lacks {len(report.left_initialised)} of its own architecture's tensors "
            f"({', '.join(report.left_initialised[:4])}, ...); it is not a whole detector"
        )
    known = torch.tensor([origin is not None for origin in report.class_rows.values()])
    lines = [*pretrained.notes, f"teacher {path} ({pretrained.kind}): {_summary(model, student)}", *report.lines()]
    if not known.any():
        lines.append(
            f"teacher {path} knows none of the dataset's classes: it teaches box edges only "
            "(its class scores are ignored; on unlabelled images it finds nothing to distil)"
        )
    return Teacher(model.eval().requires_grad_(False), known, {"path": str(path), "sha256": file_sha256(path)}, lines)


def check_same_teacher(saved: dict[str, str] | None, current: dict[str, str] | None, checkpoint: Path) -> None:
    """Refuse to resume a distillation run whose teacher file changed: ``saved`` and ``current`` are the
    checkpoint's and this run's :attr:`Teacher.record` (None without a teacher)."""
    if current is None or saved == current:
        return
    if saved is None:
        raise TrainSetupError(f"cannot resume from {checkpoint}: it records no teacher, this run distils from one")
    if saved["sha256"] != current["sha256"]:
        raise TrainSetupError(
            f"cannot resume from {checkpoint}: the teacher {current['path']} changed since the run started "
            f"(sha256 {saved['sha256'][:12]}... then, {current['sha256'][:12]}... now); restore that file "
            "or start a new run"
        )


def _summary(teacher: GFLDetector, student: GFLDetector) -> str:
    t, s = teacher.config, student.config
    bins = (
        f"reg_max {t.reg_max}, its distributions moved onto the student's {s.reg_max + 1} bins"
        if t.reg_max != s.reg_max
        else f"reg_max {t.reg_max}"
    )
    return f"{t.backbone} (width {t.backbone_width}, fpn {t.fpn_channels}), {bins}"
