"""The quality branch: how a location's localisation quality enters its class scores, and how it is trained.

- :class:`JointQuality` (GFL): the class score *is* the quality; QFL trains it against the IoU
  of the positive's predicted box (or the centerness, or TOOD's normalised alignment). No layers of its own.
- :class:`DistributionGuidedQuality` (GFLv2, DGQP): a quality logit computed from the statistics of the
  edge distributions, multiplied into the class score; the joint score is trained with QFL.
- :class:`SeparateCenterness` (the ATSS and FCOS baselines): sigmoid Focal Loss on the classes, a separate
  centerness branch trained with BCE and multiplied into the score after thresholding.
- :class:`FocalOnly` (RetinaNet): sigmoid Focal Loss on the classes, no quality at all.
- :class:`TaskAlignedScore` (TOOD's loss): the class score trained with QFL towards the assigner's
  normalised alignment, which also weights the box loss; both normalised by its sum.

A branch is an ``nn.Module`` that the head registers under :attr:`QualityBranch.weights_name`, the
name its layers have always had in weights files (``head.centerness_out.*``, ``head.dgqp.*``), so
files written before branches were components still load.

Shape letters:
    N  images      A  locations over all levels      C  classes (background excluded)
    P  positive locations in the batch      k  DGQP's top-k probabilities per edge

Reference: PAPER.md "Quality Focal Loss", "GFLv2 (DGQP)", "Training recipe".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import sigmoid_focal_loss

from gfocal.models.box_coding import BoxCoding
from gfocal.models.grid import flatten_locations
from gfocal.ops import aligned_box_iou, centerness, quality_focal_loss

__all__ = [
    "ClassificationInputs",
    "QualityBranch",
    "QualityLabel",
    "JointQuality",
    "JointScoreLoss",
    "DistributionGuidedQuality",
    "SeparateCenterness",
    "FocalOnly",
    "TaskAlignedScore",
    "iou_label",
    "centerness_label",
    "alignment_label",
    "joint_score_logits",
    "focal_term",
]


class ClassificationInputs(NamedTuple):
    """What the classification and quality losses read, over the batch's N*A locations.

    cls_logits (Tensor[N*A, C]): class logits.
    quality_logits (Tensor[N*A, 1] | None): the branch's quality logits.
    positive (Tensor[P] int64): the positives' rows in the N*A locations.
    labels (Tensor[P] int64): their classes, in [0, C).
    boxes (Tensor[P, 4]): their predicted boxes, xyxy input pixels (with gradient).
    gt_boxes (Tensor[P, 4]): their assigned ground truths, xyxy input pixels.
    points (Tensor[P, 2]): their points (x, y), pixels.
    weight (Tensor[N*A, 1] | None): 1 at real locations, 0 at another image's padding; None: all real.
    num_pos (Tensor[]): the positives' count averaged over ranks, at least 1 (the loss normaliser).
    soft_targets (Tensor[P] in [0, 1] | None): the assigner's soft targets (TOOD's normalised
        alignment), when it gives them.
    soft_target_sum (Tensor[] | None): their sum averaged over ranks, at least 1 (TOOD's normaliser);
        None without soft targets.
    """

    cls_logits: Tensor
    quality_logits: Tensor | None
    positive: Tensor
    labels: Tensor
    boxes: Tensor
    gt_boxes: Tensor
    points: Tensor
    weight: Tensor | None
    num_pos: Tensor
    soft_targets: Tensor | None = None
    soft_target_sum: Tensor | None = None


#: A quality label: the positives' classification inputs -> their QFL targets, Tensor[P] in [0, 1].
QualityLabel = Callable[[ClassificationInputs], Tensor]


def iou_label(inputs: ClassificationInputs) -> Tensor:
    """GFL's quality label: the IoU of each predicted box with its ground truth."""
    return aligned_box_iou(inputs.boxes.detach(), inputs.gt_boxes)


def centerness_label(inputs: ClassificationInputs) -> Tensor:
    """FCOS centerness of each point in its ground truth (the ablation's alternative label)."""
    return centerness(inputs.points, inputs.gt_boxes)


def alignment_label(inputs: ClassificationInputs) -> Tensor:
    """TOOD's soft target: the assigner's normalised alignment ``t / max t * max IoU`` per ground truth
    (:func:`gfocal.models.assigner.task_aligned.task_aligned_assign`)."""
    if inputs.soft_targets is None:
        raise ValueError("quality_label='alignment' needs an assigner that gives soft targets (e.g. 'task_aligned')")
    return inputs.soft_targets


class QualityBranch(Protocol):
    """How quality is predicted, folded into the scores, and trained (an ``nn.Module`` in practice)."""

    #: The head attribute holding the branch, hence the prefix of its tensors in weights files.
    weights_name: str
    #: Whether inference multiplies a per-location factor into the scores after thresholding.
    has_score_factors: bool

    def logits(self, reg_features: list[Tensor], box_outputs: Tensor) -> Tensor | None:
        """Quality logits (Tensor[N, A, 1] float32), or None, from the regression tower's features
        (list over levels of Tensor[N, K, H_l, W_l]) and the box outputs (Tensor[N, A, 4*B])."""

    def scores(self, cls_logits: Tensor, quality_logits: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """(class scores Tensor[N, A, C] in [0, 1], score factors Tensor[N, A] in [0, 1] or None)."""

    def losses(self, inputs: ClassificationInputs) -> tuple[dict[str, Tensor], Tensor]:
        """(loss terms to be summed, each positive's box-loss weight Tensor[P] without gradient)."""


def joint_score_logits(cls_logits: Tensor, quality_logits: Tensor) -> Tensor:
    """Logits of the product score ``sigmoid(cls) * sigmoid(quality)``.

    Expressing the product as a logit lets every variant share one loss (QFL
    takes logits) and one post-processing path (sigmoid of score logits).

    Args:
        cls_logits (Tensor[..., C]): class logits.
        quality_logits (Tensor[..., 1]): quality logits, broadcast over classes.

    Returns:
        Tensor[..., C]: ``logit(sigmoid(cls) * sigmoid(quality))``, finite for finite inputs.
    """
    log_p = F.logsigmoid(cls_logits) + F.logsigmoid(quality_logits)
    log_one_minus_p = torch.log(-torch.expm1(log_p).clamp(max=-torch.finfo(log_p.dtype).tiny))
    return log_p - log_one_minus_p


class JointScoreLoss(NamedTuple):
    """QFL on a joint score: the quality label it is trained towards, QFL's beta, the term's weight."""

    label: QualityLabel = iou_label
    beta: float = 2.0
    loss_weight: float = 1.0

    def __call__(self, score_logits: Tensor, inputs: ClassificationInputs) -> tuple[dict[str, Tensor], Tensor]:
        """QFL on score logits (Tensor[N*A, C]); box weights are the positives' best joint scores."""
        with torch.no_grad():
            quality = self.label(inputs)  # [P]
        loss = _qfl(score_logits, inputs, quality, self.beta, inputs.num_pos)
        box_weight = score_logits.detach()[inputs.positive].sigmoid().amax(-1)  # [P]
        return {"loss_qfl": self.loss_weight * loss}, box_weight


def _qfl(
    score_logits: Tensor, inputs: ClassificationInputs, quality: Tensor, beta: float, avg_factor: Tensor
) -> Tensor:
    """QFL of score logits (Tensor[N*A, C]) towards ``quality`` (Tensor[P]) at the positives, 0 elsewhere."""
    rows, num_classes = score_logits.shape
    labels = torch.full((rows,), num_classes, dtype=torch.long, device=score_logits.device)  # C: background
    labels[inputs.positive] = inputs.labels
    scores = torch.zeros(rows, device=score_logits.device)
    scores[inputs.positive] = quality
    return quality_focal_loss(
        score_logits, (labels, scores), beta=beta, weight=inputs.weight, avg_factor=avg_factor, validate=False
    )


class JointQuality(nn.Module):
    """GFL's joint classification-quality score: one score per class, trained with QFL."""

    weights_name = "joint_quality"  # no tensors: nothing of it appears in weights files
    has_score_factors = False

    def __init__(self, loss: JointScoreLoss = JointScoreLoss()) -> None:
        super().__init__()
        self.loss = loss

    def logits(self, reg_features: list[Tensor], box_outputs: Tensor) -> Tensor | None:
        return None

    def scores(self, cls_logits: Tensor, quality_logits: Tensor | None) -> tuple[Tensor, Tensor | None]:
        return cls_logits.sigmoid(), None

    def losses(self, inputs: ClassificationInputs) -> tuple[dict[str, Tensor], Tensor]:
        return self.loss(inputs.cls_logits, inputs)


class DistributionGuidedQuality(nn.Sequential):
    """GFLv2's DGQP: the top-k probabilities of each edge distribution and their mean -> 1x1 conv, ReLU,
    1x1 conv -> a quality logit, multiplied into every class score; the product is trained with QFL.

    Its layers are the Sequential's ``0`` and ``2`` (``head.dgqp.0.*``, ``head.dgqp.2.*``).
    """

    weights_name = "dgqp"
    has_score_factors = False

    def __init__(
        self, box_coding: BoxCoding, topk: int = 4, channels: int = 64, loss: JointScoreLoss = JointScoreLoss()
    ) -> None:
        if not box_coding.has_distributions:
            raise ValueError("DGQP reads the edge distributions: it needs a distribution box coding (box='dfl')")
        if topk > box_coding.bins:
            raise ValueError(f"dgqp_topk={topk} exceeds the {box_coding.bins} bins per edge")
        super().__init__(nn.Conv2d(4 * (topk + 1), channels, 1), nn.ReLU(inplace=True), nn.Conv2d(channels, 1, 1))
        self.box_coding, self.topk, self.loss = box_coding, topk, loss

    def logits(self, reg_features: list[Tensor], box_outputs: Tensor) -> Tensor | None:
        n, a, _ = box_outputs.shape
        probs = self.box_coding.distributions(box_outputs)  # [N, A, 4, B]
        topk = probs.topk(self.topk, dim=-1).values  # [N, A, 4, k]
        stats = torch.cat((topk, topk.mean(-1, keepdim=True)), dim=-1).reshape(n, a, -1)  # [N, A, 4*(k+1)]
        # A 1x1 conv over locations is a linear map over the statistics; run it as [N, 4*(k+1), A, 1].
        quality = self(stats.transpose(1, 2).unsqueeze(-1).to(self[0].weight.dtype))
        return quality.squeeze(-1).transpose(1, 2).float()  # [N, A, 1]

    def scores(self, cls_logits: Tensor, quality_logits: Tensor | None) -> tuple[Tensor, Tensor | None]:
        return joint_score_logits(cls_logits, quality_logits).sigmoid(), None

    def losses(self, inputs: ClassificationInputs) -> tuple[dict[str, Tensor], Tensor]:
        score_logits = joint_score_logits(inputs.cls_logits, inputs.quality_logits)
        return self.loss(score_logits, inputs)


class SeparateCenterness(nn.Conv2d):
    """The ATSS baseline's quality: a 3x3 conv on the regression tower predicting centerness, trained
    with BCE and multiplied into the focal-loss class scores after thresholding.

    The branch is the conv itself, so its tensors keep their name ``head.centerness_out.*``.
    """

    weights_name = "centerness_out"
    has_score_factors = True

    def __init__(
        self,
        in_channels: int,
        alpha: float = 0.25,
        gamma: float = 2.0,
        loss_cls_weight: float = 1.0,
        loss_centerness_weight: float = 1.0,
    ) -> None:
        super().__init__(in_channels, 1, 3, padding=1)
        self.alpha, self.gamma = alpha, gamma
        self.loss_cls_weight, self.loss_centerness_weight = loss_cls_weight, loss_centerness_weight

    def logits(self, reg_features: list[Tensor], box_outputs: Tensor) -> Tensor | None:
        return torch.cat([flatten_locations(self(feature)) for feature in reg_features], dim=1).float()  # [N, A, 1]

    def scores(self, cls_logits: Tensor, quality_logits: Tensor | None) -> tuple[Tensor, Tensor | None]:
        return cls_logits.sigmoid(), quality_logits.squeeze(-1).sigmoid()

    def losses(self, inputs: ClassificationInputs) -> tuple[dict[str, Tensor], Tensor]:
        target = centerness(inputs.points, inputs.gt_boxes)  # [P]
        quality_logits = inputs.quality_logits.reshape(-1)[inputs.positive]  # [P]
        bce = F.binary_cross_entropy_with_logits(quality_logits, target, reduction="sum")
        losses = {
            "loss_focal": self.loss_cls_weight * focal_term(inputs, self.alpha, self.gamma),
            "loss_centerness": self.loss_centerness_weight * bce / inputs.num_pos,
        }
        return losses, target


def focal_term(inputs: ClassificationInputs, alpha: float, gamma: float) -> Tensor:
    """Sigmoid Focal Loss of the class logits against one-hot labels, summed over real locations and
    classes, divided by the positives' count (RetinaNet's normaliser)."""
    onehot = torch.zeros_like(inputs.cls_logits)
    onehot[inputs.positive, inputs.labels] = 1.0
    focal = sigmoid_focal_loss(inputs.cls_logits, onehot, alpha=alpha, gamma=gamma, reduction="none")
    if inputs.weight is not None:
        focal = focal * inputs.weight  # [N*A, C]
    return focal.sum() / inputs.num_pos


class FocalOnly(nn.Module):
    """RetinaNet's classification: sigmoid Focal Loss on the classes and no quality branch; every positive's
    box loss weighs 1 (so the box normaliser is the positives' count)."""

    weights_name = "focal_only"  # no tensors: nothing of it appears in weights files
    has_score_factors = False

    def __init__(self, alpha: float = 0.25, gamma: float = 2.0, loss_cls_weight: float = 1.0) -> None:
        super().__init__()
        self.alpha, self.gamma, self.loss_cls_weight = alpha, gamma, loss_cls_weight

    def logits(self, reg_features: list[Tensor], box_outputs: Tensor) -> Tensor | None:
        return None

    def scores(self, cls_logits: Tensor, quality_logits: Tensor | None) -> tuple[Tensor, Tensor | None]:
        return cls_logits.sigmoid(), None

    def losses(self, inputs: ClassificationInputs) -> tuple[dict[str, Tensor], Tensor]:
        box_weight = torch.ones(len(inputs.positive), device=inputs.cls_logits.device)  # [P]
        return {"loss_focal": self.loss_cls_weight * focal_term(inputs, self.alpha, self.gamma)}, box_weight


class TaskAlignedScore(JointQuality):
    """TOOD's loss on a plain head: the class score is trained with QFL towards the assigner's normalised
    alignment ``t / max t * max IoU`` (its soft target), and the same soft targets weight the box loss;
    both terms are normalised by the soft targets' sum (at least 1), as mmdetection's ``TOODHead``.

    Scores and inference are GFL's joint score (:class:`JointQuality`); TOOD's task-decomposition head and its
    score-alignment branch are not part of it (see :mod:`gfocal.models.variants`).
    """

    weights_name = "task_aligned_score"  # no tensors: nothing of it appears in weights files

    def losses(self, inputs: ClassificationInputs) -> tuple[dict[str, Tensor], Tensor]:
        soft_targets = alignment_label(inputs)  # [P]
        loss = _qfl(inputs.cls_logits, inputs, soft_targets, self.loss.beta, inputs.soft_target_sum)
        return {"loss_qfl": self.loss.loss_weight * loss}, soft_targets
