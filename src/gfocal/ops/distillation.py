"""Localization distillation: a teacher's edge distributions, softened by a temperature, as the targets of a
student's (KL divergence), and the move of a distribution onto another number of bins.

Shape letters used in this module:
    E  edges (four per location, any number of locations)
    R  the student's ``reg_max`` (R + 1 bins per edge); Q the teacher's

Reference: Zheng et al., "Localization Distillation for Dense Object Detection", CVPR 2022 (arXiv
2102.12252), eq. 4; mmdetection 3.3 ``knowledge_distillation_kl_div_loss``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from gfocal.ops.losses import Reduction, reduce_loss

__all__ = ["localization_distillation_loss", "resample_bins"]


def resample_bins(probs: Tensor, bins: int) -> Tensor:
    """A distribution over bins ``0..Q`` (stride units) moved onto bins ``0..bins-1`` of the same unit width.

    Bin i is the distance i strides for every ``reg_max``, so the bins both have keep their mass; a longer
    distribution's mass beyond the last bin piles onto it (where DFL clamps a target too), a shorter one
    leaves the extra bins empty.

    Args:
        probs (Tensor[..., Q+1]): probabilities, each row summing to 1.
        bins: R + 1, the number of bins wanted (>= 2).

    Returns:
        Tensor[..., R+1]: probabilities, each row summing to 1.
    """
    have = probs.shape[-1]
    if have == bins:
        return probs
    if have < bins:
        return F.pad(probs, (0, bins - have))
    tail = probs[..., bins - 1 :].sum(-1, keepdim=True)
    return torch.cat((probs[..., : bins - 1], tail), dim=-1)


def localization_distillation_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    temperature: float = 10.0,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """LD: ``T² · mean_bins KL(softmax(t / T) ‖ softmax(s / T))`` per edge.

    The mean over the bins (not the sum) and the ``T²`` are mmdetection's (``KnowledgeDistillationKLDivLoss``),
    so values equal its own. The teacher is a target: no gradient reaches it.

    Args:
        student_logits (Tensor[E, R+1]): the student's edge-distribution logits.
        teacher_logits (Tensor[E, Q+1]): the teacher's; another ``reg_max`` is moved onto the student's bins
            after softening (:func:`resample_bins`).
        temperature: T >= 1; larger T softens both distributions.
        weight: optional per-edge weights, shape [E].
        reduction: "none" returns [E]; "sum"; "mean" (sum / ``avg_factor`` when given, else mean over edges).
        avg_factor: divisor for "mean".

    Returns:
        Tensor: the reduced loss, or [E] for ``reduction="none"``.

    Reference: arXiv 2102.12252 eq. 4.
    """
    if student_logits.dim() != 2 or teacher_logits.dim() != 2 or student_logits.shape[0] != teacher_logits.shape[0]:
        raise ValueError(
            "student_logits and teacher_logits must be (E, R+1) and (E, Q+1) with the same E, got "
            f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}"
        )
    if temperature < 1:
        raise ValueError(f"temperature must be >= 1, got {temperature}")
    target = resample_bins((teacher_logits.detach() / temperature).softmax(-1), student_logits.shape[-1])
    log_student = (student_logits / temperature).log_softmax(-1)
    loss = F.kl_div(log_student, target, reduction="none").mean(-1) * temperature**2  # [E]
    return reduce_loss(loss, weight, reduction, avg_factor)
