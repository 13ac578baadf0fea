"""Localization distillation (LD): a trained teacher's edge distributions teach a student detector.

A :class:`DistillingDetector` wraps the student (the only module it registers: its parameters, state dict,
EMA and exports are the student's alone) and holds the teacher beside it, in eval mode, without gradients.
Each training batch goes once through the student (its own GFL losses, :meth:`GFLDetector.training_pass`) and
once through the teacher, on the same normalised input tensor, so both predict at the same locations. Then:

- ``loss_ld``, on the main region (the student's positives): as mmdetection 3.3's ``LDHead``, the KL of the
  softened distributions weighted by the student's best class score at the positive, summed over the
  positives and averaged over their four edges (no division by the number of positives: mmdetection's
  scale, which :mod:`tests.interop` pins);
- ``loss_ld_vlr``, on the valuable localization region (LD's VLR; mmdetection 3.3 has none): locations whose
  anchor's DIoU with a ground truth lies in ``[alpha * t, t)``, t being that box's ATSS IoU threshold, the
  main region excluded; weighted by the anchor's IoU with it, normalised as LD's own code (sum / 16);
- ``loss_ld_cls`` (off by default): the teacher's joint scores as soft QFL targets of the student's on both
  regions.

Images without annotations (``target["unlabelled"]``) take no GFL loss; their regions come from the
teacher's confident detections, which stand in for the ground truth there.

Shape letters: N images, A locations, C classes, P main-region locations, V VLR locations, M ground truths,
R the student's reg_max, Q the teacher's.

Reference: Zheng et al., "Localization Distillation for Dense Object Detection", CVPR 2022; mmdetection 3.3
``LDHead``, ``KnowledgeDistillationSingleStageDetector``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torchvision.ops import distance_box_iou

from gfocal.models.assigner.atss import atss_candidates
from gfocal.models.config import ModelConfig
from gfocal.models.detector import GFLDetector, TrainingPass
from gfocal.models.grid import LocationGrid
from gfocal.models.head import HeadOutputs
from gfocal.models.postprocess import postprocess_image
from gfocal.models.quality import joint_score_logits
from gfocal.models.targets import BatchTargets, PaddedTargets
from gfocal.ops import localization_distillation_loss, quality_focal_loss, square_anchors

__all__ = [
    "DistillationSettings",
    "DistillingDetector",
    "check_distillable",
    "distillation_losses",
    "valuable_localization_region",
]

_VLR_AVG_FACTOR = 16.0  # LD's own code (HikariTJU/LD LDHead): the VLR term's sum over edges / 16


@dataclass(frozen=True)
class DistillationSettings:
    """How the student learns from the teacher.

    Attributes:
        temperature: T softening both distributions (mmdetection's LD configs: 10).
        weight: weight of ``loss_ld`` on the main region (mmdetection: 0.25).
        vlr_weight: weight of ``loss_ld_vlr`` (LD's code: 0.25); 0 turns the VLR off.
        vlr_alpha: the VLR's lower DIoU bound as a share of the ATSS threshold (LD's paper: 0.25).
        cls_weight: weight of ``loss_ld_cls``, the teacher's joint scores as soft class targets; 0: off.
        pseudo_score: on images without annotations, the teacher's detections scoring at least this
            stand in for their ground truth.
    """

    temperature: float = 10.0
    weight: float = 0.25
    vlr_weight: float = 0.25
    vlr_alpha: float = 0.25
    cls_weight: float = 0.0
    pseudo_score: float = 0.5

    def __post_init__(self) -> None:
        if self.temperature < 1:
            raise ValueError(f"the distillation temperature must be >= 1, got {self.temperature}")
        for name in ("weight", "vlr_weight", "cls_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"the distillation {name} must be >= 0, got {getattr(self, name)}")
        for name in ("vlr_alpha", "pseudo_score"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"the distillation {name} must be in (0, 1], got {getattr(self, name)}")


def check_distillable(student: ModelConfig, teacher: ModelConfig) -> None:
    """Raise ValueError saying why ``teacher`` cannot teach ``student``: both must predict edge distributions
    at the same locations (strides and point offset). Another backbone, width, depth, input size or
    ``reg_max`` is fine: the teacher runs on the student's input, and its distributions are moved onto the
    student's bins (:func:`gfocal.ops.resample_bins`; bin i is i strides for every reg_max)."""
    for who, config in (("student", student), ("teacher", teacher)):
        if config.box != "dfl":
            raise ValueError(
                f"the {who} regresses boxes with box={config.box!r}, not edge distributions (box='dfl'): "
                "localization distillation needs both to predict distributions"
            )
    if tuple(student.strides) != tuple(teacher.strides) or student.point_offset != teacher.point_offset:
        raise ValueError(
            f"the teacher predicts at strides {tuple(teacher.strides)} (point offset {teacher.point_offset}), the "
            f"student at {tuple(student.strides)} ({student.point_offset}): distillation needs the same locations"
        )


class Region(NamedTuple):
    """The locations a batch distils on.

    main (BatchTargets): the student's assignment; its positives are the main region.
    vlr (Tensor[N, A] bool): the valuable localization region.
    vlr_iou (Tensor[N, A] float32): each VLR location's anchor IoU with its ground truth, 0 elsewhere.
    """

    main: BatchTargets
    vlr: Tensor
    vlr_iou: Tensor


def valuable_localization_region(
    grid: LocationGrid,
    gt: PaddedTargets,
    valid: Tensor,
    positive: Tensor,
    alpha: float = 0.25,
    topk: int = 9,
    anchor_scale: float = 8.0,
) -> tuple[Tensor, Tensor]:
    """LD's VLR: valid locations whose square anchor has, with some ground truth g, ``alpha * t_g <= DIoU < t_g``
    (``t_g`` g's ATSS IoU threshold, mean + std of its candidates' IoUs), outside the main region.

    Args:
        grid: the A locations.
        gt: the padded ground truth (M boxes per image, input pixels).
        valid (Tensor[N, A] bool): each image's own locations.
        positive (Tensor[N, A] bool): the main region, left out.
        alpha: the lower bound's share of the threshold.
        topk, anchor_scale: ATSS's settings (the threshold's candidates, the anchor's side in strides).

    Returns:
        ``(vlr, iou)``: Tensor[N, A] bool, and Tensor[N, A] float32 the anchor's highest IoU among the ground
        truths that put it in the region (its weight), 0 outside.
    """
    num_images, num_gt = gt.valid.shape
    if num_gt == 0:
        return torch.zeros_like(valid), torch.zeros_like(valid, dtype=torch.float32)
    candidates = atss_candidates(grid, gt.boxes, topk, anchor_scale, valid)
    anchors = square_anchors(grid.points, grid.strides, anchor_scale)  # [A, 4], the anchors ATSS ranks by
    diou = distance_box_iou(anchors, gt.boxes.reshape(-1, 4)).reshape(-1, num_images, num_gt).permute(1, 0, 2)
    threshold = candidates.threshold.unsqueeze(1)  # [N, 1, M]
    inside = (diou >= alpha * threshold) & (diou < threshold) & gt.valid.unsqueeze(1)  # [N, A, M]
    iou = torch.where(inside, candidates.ious, 0.0).amax(-1)  # [N, A]
    vlr = inside.any(-1) & valid & ~positive
    return vlr, torch.where(vlr, iou, 0.0)


def distillation_losses(
    student: HeadOutputs,
    teacher: HeadOutputs,
    region: Region,
    student_scores: Tensor,
    teacher_scores: Tensor | None,
    settings: DistillationSettings,
) -> dict[str, Tensor]:
    """The LD terms of a batch (float32, whatever precision the networks ran in).

    Args:
        student, teacher: head outputs at the same A locations; box outputs [N, A, 4*(R+1)] and [N, A, 4*(Q+1)].
        region: where to distil.
        student_scores (Tensor[N, A, C] in [0, 1]): the student's detached class (joint) scores; the main
            region's weights are their maximum over classes, as mmdetection's box weights.
        teacher_scores (Tensor[N, A, C] in [0, 1] | None): the teacher's joint scores, the soft class targets
            when ``settings.cls_weight`` > 0 (its classes the dataset lacks already zeroed).
        settings: temperature and weights.

    Returns:
        ``loss_ld``, plus ``loss_ld_vlr`` and ``loss_ld_cls`` when their weights are > 0.
    """
    positives = region.main.positives
    student_bins = student.box_outputs.shape[-1] // 4
    teacher_bins = teacher.box_outputs.shape[-1] // 4
    weight = positives.gather(student_scores).amax(-1)  # [P]
    main = localization_distillation_loss(
        positives.gather(student.box_outputs).reshape(-1, student_bins),  # [4P, R+1]
        positives.gather(teacher.box_outputs).reshape(-1, teacher_bins),  # [4P, Q+1]
        settings.temperature,
        weight=weight.repeat_interleave(4),
        reduction="sum",
    )
    losses = {"loss_ld": settings.weight * main / 4}
    if settings.vlr_weight > 0:
        image, location = region.vlr.nonzero(as_tuple=True)  # [V] each
        vlr = localization_distillation_loss(
            student.box_outputs[image, location].reshape(-1, student_bins),  # [4V, R+1]
            teacher.box_outputs[image, location].reshape(-1, teacher_bins),  # [4V, Q+1]
            settings.temperature,
            weight=region.vlr_iou[image, location].repeat_interleave(4),
            reduction="sum",
        )
        losses["loss_ld_vlr"] = settings.vlr_weight * vlr / _VLR_AVG_FACTOR
    if settings.cls_weight > 0 and teacher_scores is not None:
        losses["loss_ld_cls"] = settings.cls_weight * _soft_class_loss(student, teacher_scores, region)
    return losses


def _soft_class_loss(student: HeadOutputs, teacher_scores: Tensor, region: Region) -> Tensor:
    """QFL of the student's joint score logits towards the teacher's joint scores, averaged over the region."""
    logits = student.cls_logits
    if student.quality_logits is not None:  # GFLv2: the trained score is the joint one
        logits = joint_score_logits(logits, student.quality_logits)
    taught = region.vlr.clone()
    taught[region.main.positives.image, region.main.positives.location] = True  # [N, A]
    return quality_focal_loss(
        logits[taught], teacher_scores[taught], avg_factor=taught.sum().clamp_min(1), validate=False
    )


class DistillingDetector(nn.Module):
    """A student :class:`GFLDetector` trained with a teacher's localization knowledge beside its own losses.

    In training mode ``model(images, targets)`` returns the student's loss dict plus the LD terms; in eval
    mode it is the student's detections. The teacher is not a submodule: it never appears in
    ``parameters()``, ``state_dict()`` or anything saved, and ``train()`` leaves it in eval mode.

    Args:
        student: the detector being trained.
        teacher: a trained detector with the student's classes (rows of the classes it did not know zeroed
            through ``known_classes``), checked by :func:`check_distillable`.
        settings: temperature, weights, pseudo-label score.
        known_classes (Tensor[C] bool | None): the student's classes the teacher was trained on; None: all.
    """

    def __init__(
        self,
        student: GFLDetector,
        teacher: GFLDetector,
        settings: DistillationSettings = DistillationSettings(),
        known_classes: Tensor | None = None,
    ) -> None:
        super().__init__()
        check_distillable(student.config, teacher.config)
        self.student = student
        self.settings = settings
        object.__setattr__(self, "teacher", teacher.eval().requires_grad_(False))  # not registered: never saved
        known = torch.ones(student.config.num_classes, dtype=torch.bool) if known_classes is None else known_classes
        self.register_buffer("known_classes", known.clone(), persistent=False)
        scale, shift = _renormalisation(student.config, teacher.config)
        self.register_buffer("input_scale", scale, persistent=False)
        self.register_buffer("input_shift", shift, persistent=False)

    def _apply(self, fn, recurse: bool = True):  # type: ignore[no-untyped-def]
        """``to()``, ``cuda()``, ``half()``: the teacher follows the student to its device and memory format."""
        self.teacher._apply(fn, recurse)
        return super()._apply(fn, recurse)

    def train(self, mode: bool = True) -> DistillingDetector:
        super().train(mode)
        self.teacher.eval()  # its BatchNorm statistics and outputs stay those it was trained with
        return self

    @property
    def config(self) -> ModelConfig:
        return self.student.config

    def forward(
        self,
        images: list[Tensor],
        targets: list[dict[str, Tensor]] | None = None,
        input_size: tuple[int, int] | None = None,
    ) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        """Losses (the student's and the LD terms) in training mode, the student's detections in eval mode.

        ``targets[i]["unlabelled"]`` True marks an image without annotations: no GFL loss on it, and the
        teacher's detections scoring at least ``settings.pseudo_score`` stand in for its ground truth.
        """
        if not self.training:
            return self.student(images, input_size=input_size)
        if targets is None:
            raise ValueError("targets are required in training mode (call model.eval() for inference)")
        supervised = torch.tensor([not t.get("unlabelled", False) for t in targets])
        step = self.student.training_pass(images, targets, input_size, None if supervised.all() else supervised)
        with torch.no_grad():
            teacher, _ = self.teacher.head_outputs(step.batch.tensors * self.input_scale + self.input_shift)
        with torch.autocast(step.batch.tensors.device.type, enabled=False):
            losses = self._distil(step, _float(teacher), supervised)
        return {**step.losses, **losses}

    def _distil(self, step: TrainingPass, teacher: HeadOutputs, supervised: Tensor) -> dict[str, Tensor]:
        student, settings = self.student, self.settings
        with torch.no_grad():
            student_scores, _ = student.head.quality.scores(
                step.outputs.cls_logits.detach(), _detached(step.outputs.quality_logits)
            )  # [N, A, C]
            teacher_scores = self.teacher.head.quality.scores(teacher.cls_logits, teacher.quality_logits)[0]
            teacher_scores = teacher_scores * self.known_classes  # [N, A, C]
        main = student.last_targets
        taught = supervised.tolist()  # one host sync: which images carry annotations
        if not all(taught):
            targets = [
                target if labelled else self._pseudo_targets(teacher, teacher_scores, step, i)
                for i, (target, labelled) in enumerate(zip(step.targets, taught))
            ]
            main = student.criterion.assign(step.outputs, step.grid, targets, step.valid)
            pseudo = sum(len(t["boxes"]) for t, labelled in zip(targets, taught) if not labelled)
            student.last_stats["pseudo_boxes"] = pseudo / taught.count(False)
        vlr, vlr_iou = valuable_localization_region(
            step.grid,
            main.padded,
            step.valid,
            main.assignment.positive,
            settings.vlr_alpha,
            student.config.atss_topk,
            student.config.anchor_scale,
        )
        student.last_stats["vlr_locations"] = float(vlr.sum()) / len(step.targets)
        region = Region(main, vlr, vlr_iou)
        return distillation_losses(step.outputs, teacher, region, student_scores, teacher_scores, settings)

    def _pseudo_targets(
        self, teacher: HeadOutputs, scores: Tensor, step: TrainingPass, index: int
    ) -> dict[str, Tensor]:
        """The teacher's detections on image ``index`` scoring at least ``pseudo_score``, as its ground truth
        (input pixels); ``scores`` (Tensor[N, A, C]) are the teacher's, its unknown classes zeroed."""
        found = postprocess_image(
            self.teacher.config,
            self.teacher.head.box_coding,
            scores[index],
            None,
            teacher.box_outputs[index],
            step.grid,
            step.batch.image_sizes[index],
        )
        keep = found["scores"] >= self.settings.pseudo_score
        return {"boxes": found["boxes"][keep], "labels": found["labels"][keep]}


def _renormalisation(student: ModelConfig, teacher: ModelConfig) -> tuple[Tensor, Tensor]:
    """``(scale, shift)``, Tensor[1, 3, 1, 1] each: the student's normalised input times scale plus shift is
    the teacher's (identity when both normalise alike; padding then differs from the teacher's zeros,
    outside every image)."""
    mean_s, std_s = torch.tensor(student.image_mean), torch.tensor(student.image_std)
    mean_t, std_t = torch.tensor(teacher.image_mean), torch.tensor(teacher.image_std)
    return (std_s / std_t).view(1, 3, 1, 1), ((mean_s - mean_t) / std_t).view(1, 3, 1, 1)


def _float(outputs: HeadOutputs) -> HeadOutputs:
    return HeadOutputs(*(None if t is None else t.float() for t in outputs))


def _detached(tensor: Tensor | None) -> Tensor | None:
    return None if tensor is None else tensor.detach()
