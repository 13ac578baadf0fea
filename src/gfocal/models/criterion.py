"""The losses of every variant of the head, from its outputs and the positives its assigner picks.

Shape letters:
    N  images      A  locations      C  classes      M  ground truths per image (padded)
    P  positive locations in the batch      B  outputs per edge (reg_max + 1, or 1 for Dirac)

All of it runs in float32 (autocast disabled), whatever precision the network ran in.

Reference: PAPER.md "Training recipe", Loss weights; mmdetection's GFLHead/ATSSHead normalisation.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

from gfocal.models.assigner import Assigner, needs_predictions
from gfocal.models.box_coding import BoxCoding, BoxLossInputs
from gfocal.models.components import build_assigner, build_box_coding, build_quality
from gfocal.models.config import ModelConfig
from gfocal.models.grid import LocationGrid
from gfocal.models.head import HeadOutputs
from gfocal.models.quality import ClassificationInputs, QualityBranch
from gfocal.models.targets import BatchTargets, assign_targets, assignment_predictions

__all__ = ["GFLCriterion"]


def _mean_over_ranks(value: Tensor) -> Tensor:
    """Average a scalar over the distributed ranks (the paper averages the normalisers across GPUs)."""
    if dist.is_available() and dist.is_initialized():
        value = value.clone()
        dist.all_reduce(value)
        value /= dist.get_world_size()
    return value


def _detached(tensor: Tensor | None) -> Tensor | None:
    return None if tensor is None else tensor.detach().float()


class GFLCriterion:
    """The loss dict of a batch from head outputs and targets: the assigner picks the positives, the
    quality branch gives the classification terms and each positive's box weight, the box coding the
    box terms. The criterion itself only owns the normalisers and the order of these steps.

    After each call, :attr:`last_targets` holds the batch's targets (padded ground truth, assignment,
    positives; no gradient), so the trainer and analysis tools can see what training trained on.
    """

    def __init__(self, box_coding: BoxCoding, quality: QualityBranch, assigner: Assigner) -> None:
        self.box_coding, self.quality, self.assigner = box_coding, quality, assigner
        self.last_targets: BatchTargets | None = None

    @classmethod
    def from_config(cls, config: ModelConfig) -> GFLCriterion:
        """The criterion of a configuration, with its own quality branch (a detector shares its head's)."""
        box_coding = build_box_coding(config)
        return cls(box_coding, build_quality(config, box_coding)(config.feat_channels), build_assigner(config))

    def __call__(
        self,
        outputs: HeadOutputs,
        grid: LocationGrid,
        targets: list[dict[str, Tensor]],
        valid: Tensor | None = None,
    ) -> tuple[dict[str, Tensor], dict[str, float]]:
        """Returns (losses to be summed, counters for the logger).

        Args:
            outputs: head outputs for N images at the A locations of ``grid``.
            grid: the locations.
            targets: per image ``boxes`` (Tensor[M, 4] xyxy, input pixels) and ``labels`` (Tensor[M] in [0, C)).
            valid (Tensor[N, A] bool | None): the locations of each image, not padding added for other
                images (:func:`gfocal.models.grid.valid_locations`); the rest are never assigned and
                have no loss, as in mmdetection. None: all locations.
        """
        with torch.autocast(outputs.cls_logits.device.type, enabled=False):
            return self._losses(outputs, grid, targets, valid)

    def assign(
        self, outputs: HeadOutputs, grid: LocationGrid, targets: list[dict[str, Tensor]], valid: Tensor | None = None
    ) -> BatchTargets:
        """The batch's targets as training picks them; arguments as :meth:`__call__`. The head outputs are
        read (detached, float32) only by an assigner that ``needs_predictions``."""
        predictions = None
        if needs_predictions(self.assigner):
            scores, _ = self.quality.scores(outputs.cls_logits.detach().float(), _detached(outputs.quality_logits))
            predictions = assignment_predictions(scores, outputs.box_outputs, grid, self.box_coding)
        return assign_targets(grid, targets, self.assigner, valid, predictions)

    def _losses(
        self, outputs: HeadOutputs, grid: LocationGrid, targets: list[dict[str, Tensor]], valid: Tensor | None
    ) -> tuple[dict[str, Tensor], dict[str, float]]:
        device = outputs.cls_logits.device
        self.last_targets = self.assign(outputs, grid, targets, valid)
        positives = self.last_targets.positives
        pos_box_outputs = positives.gather(outputs.box_outputs)  # [P, 4*B]
        pos_boxes = self.box_coding.decode(pos_box_outputs, positives.point, positives.stride)  # [P, 4] pixels
        num_pos = _mean_over_ranks(torch.tensor(float(len(positives.label)), device=device)).clamp_min(1.0)
        num_classes = outputs.cls_logits.shape[-1]
        cls_logits = outputs.cls_logits.reshape(-1, num_classes)  # [N*A, C]
        quality_logits = None if outputs.quality_logits is None else outputs.quality_logits.reshape(-1, 1)  # [N*A, 1]
        # Positives are valid by construction; only the classification terms reach invalid locations.
        # Ignored ones (neither positive nor negative, e.g. RetinaNet's) have no classification loss either.
        trained, ignored = valid, self.last_targets.assignment.ignored  # [N, A] each, or None
        if ignored is not None:
            trained = ~ignored if trained is None else trained & ~ignored
        cls_weight = None if trained is None else trained.reshape(-1, 1).to(cls_logits.dtype)  # [N*A, 1]
        flat_pos = positives.flat_index(outputs.cls_logits.shape[1])  # [P]
        soft_target_sum = None
        if positives.soft_target is not None:  # TOOD's normaliser
            soft_target_sum = _mean_over_ranks(positives.soft_target.sum()).clamp_min(1.0)
        losses, box_weight = self.quality.losses(
            ClassificationInputs(
                cls_logits,
                quality_logits,
                flat_pos,
                positives.label,
                pos_boxes,
                positives.box,
                positives.point,
                cls_weight,
                num_pos,
                positives.soft_target,
                soft_target_sum,
            )  # fmt: skip
        )
        weight_sum = _mean_over_ranks(box_weight.sum()).clamp_min(1.0)
        box_inputs = BoxLossInputs(
            pos_box_outputs,
            pos_boxes,
            positives.box,
            positives.point,
            positives.stride,
            box_weight,
            weight_sum,
        )  # fmt: skip
        losses.update(self.box_coding.losses(box_inputs))
        stats = {"num_pos": float(len(positives.label)) / max(len(targets), 1)}
        if positives.soft_target is not None and len(positives.label):
            stats["mean_soft_target"] = float(positives.soft_target.mean())
        stats.update(self.box_coding.training_stats(box_inputs))
        return losses, stats
