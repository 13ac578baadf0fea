"""The GFL detector: transform -> backbone (ResNet+FPN) -> GFL head -> (losses | detections).

Follows torchvision's detection contract: in training mode
``model(images, targets)`` returns a dict of losses to be summed; in eval mode
``model(images)`` returns one ``{"boxes", "scores", "labels"}`` dict per image in
that image's original pixel coordinates. Every path (training, inference,
export, analysis) runs through :meth:`GFLDetector.head_outputs`.

Shape letters: N images, A locations over all levels, C classes.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from gfocal.models.assigner import needs_predictions
from gfocal.models.backbone import Backbone
from gfocal.models.components import build_assigner, build_backbone, build_box_coding, build_quality
from gfocal.models.config import ModelConfig
from gfocal.models.criterion import GFLCriterion
from gfocal.models.grid import LocationGrid, location_grid, valid_locations
from gfocal.models.head import GFLHead, HeadOutputs
from gfocal.models.postprocess import postprocess_image
from gfocal.models.targets import BatchTargets, assign_targets, assignment_predictions
from gfocal.models.transform import DetectionTransform, ImageBatch

__all__ = ["GFLDetector", "ScoredOutputs", "TrainingPass"]


class ScoredOutputs(NamedTuple):
    """What inference needs per location, for a batch.

    scores (Tensor[N, A, C]): class scores in [0, 1] (the joint score for QFL variants, DGQP included).
    score_factors (Tensor[N, A] | None): centerness to multiply in after thresholding (ATSS baseline).
    box_outputs (Tensor[N, A, 4*B]): edge distribution logits or stride-unit distances.
    grid: the locations.
    """

    scores: Tensor
    score_factors: Tensor | None
    box_outputs: Tensor
    grid: LocationGrid


class TrainingPass(NamedTuple):
    """One training forward: the loss dict and what it was computed from, for losses added beside it
    (localization distillation, :mod:`gfocal.models.distillation`).

    losses: the detector's own loss terms, to be summed.
    batch: the normalised, padded network input.
    targets: the targets, boxes in network input pixels.
    outputs: head outputs (float32) at the A locations of ``grid``.
    grid: the locations.
    valid (Tensor[N, A] bool): each image's own locations (not padding).
    """

    losses: dict[str, Tensor]
    batch: ImageBatch
    targets: list[dict[str, Tensor]]
    outputs: HeadOutputs
    grid: LocationGrid
    valid: Tensor


class GFLDetector(nn.Module):
    """A GFL (or ATSS-baseline, or GFLv2) detector: a backbone, a head and a criterion that share the
    head's box coding and quality branch; ``config`` is its serialised form (inference settings,
    input transform, and what :meth:`from_config` builds it from).
    """

    def __init__(self, config: ModelConfig, backbone: Backbone, head: GFLHead, criterion: GFLCriterion) -> None:
        super().__init__()
        self.config = config
        self.transform = DetectionTransform(config)
        self.backbone = backbone
        self.head = head
        self.criterion = criterion
        self.last_stats: dict[str, float] = {}

    @classmethod
    def from_config(cls, config: ModelConfig) -> GFLDetector:
        """The detector a configuration describes (components by name: :mod:`gfocal.models.components`)."""
        # Every name is looked up before the backbone allocates its weights.
        assigner, box_coding = build_assigner(config), build_box_coding(config)
        quality = build_quality(config, box_coding)
        backbone = build_backbone(config)
        head = GFLHead(
            backbone.out_channels,
            len(backbone.strides),
            config.num_classes,
            box_coding,
            quality,
            feat_channels=config.feat_channels,
            stacked_convs=config.stacked_convs,
            norm_groups=config.norm_groups,
            prior_prob=config.prior_prob,
        )
        return cls(config, backbone, head, GFLCriterion(box_coding, head.quality, assigner))

    @property
    def last_targets(self) -> BatchTargets | None:
        """The targets (positives included) of the last training batch: :attr:`GFLCriterion.last_targets`."""
        return self.criterion.last_targets

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.config.class_names or tuple(str(i) for i in range(self.config.num_classes))

    def head_outputs(self, batch: Tensor) -> tuple[HeadOutputs, LocationGrid]:
        """The one forward path of the network.

        Args:
            batch (Tensor[N, 3, H, W]): normalised, padded images.

        Returns:
            (HeadOutputs in float32, the locations' grid).
        """
        features = self.backbone(batch)
        outputs = self.head(features)
        grid = location_grid(
            [tuple(f.shape[-2:]) for f in features], self.backbone.strides, self.config.point_offset, batch.device
        )
        return outputs, grid

    def scored_outputs(self, batch: Tensor) -> ScoredOutputs:
        """Head outputs turned into per-location scores by the quality branch; used by inference and export."""
        outputs, grid = self.head_outputs(batch)
        scores, score_factors = self.head.quality.scores(outputs.cls_logits, outputs.quality_logits)
        return ScoredOutputs(scores, score_factors, outputs.box_outputs, grid)

    def assign(
        self,
        grid: LocationGrid,
        targets: list[dict[str, Tensor]],
        valid: Tensor | None = None,
        scored: ScoredOutputs | None = None,
    ) -> BatchTargets:
        """The positives training would use (the criterion's assigner), for analysis tools; arguments as
        :func:`gfocal.models.targets.assign_targets`. ``scored`` (the batch's :meth:`scored_outputs`) is
        required by an assigner that ranks locations by the predictions (``assigner="task_aligned"``)."""
        predictions = None
        if scored is not None and needs_predictions(self.criterion.assigner):
            predictions = assignment_predictions(scored.scores, scored.box_outputs, grid, self.head.box_coding)
        return assign_targets(grid, targets, self.criterion.assigner, valid, predictions)

    def forward(
        self,
        images: list[Tensor],
        targets: list[dict[str, Tensor]] | None = None,
        return_distributions: bool = False,
        input_size: tuple[int, int] | None = None,
    ) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        """Losses in training mode, detections in eval mode.

        Args:
            images: list of Tensor[3, H, W], RGB, uint8 in [0, 255] or float in [0, 1], any sizes.
            targets: in training, one dict per image with ``boxes`` (Tensor[M, 4] float, xyxy pixels)
                and ``labels`` (Tensor[M] int64 in [0, num_classes)).
            return_distributions: in eval, also return per-box edge distributions and their spread
                (see :func:`gfocal.models.postprocess.postprocess_image`).
            input_size: ``(min_size, max_size)`` of the network input for this call instead of the
                config's (multi-scale training); see :func:`gfocal.image_geometry.fit_size`.
        """
        if self.training:
            if targets is None:
                raise ValueError("targets are required in training mode (call model.eval() for inference)")
            return self.training_pass(images, targets, input_size).losses
        batch, _ = self.transform(images, input_size=input_size)
        return self.detect(batch, self.scored_outputs(batch.tensors), return_distributions)

    def training_pass(
        self,
        images: list[Tensor],
        targets: list[dict[str, Tensor]],
        input_size: tuple[int, int] | None = None,
        supervised: Tensor | None = None,
    ) -> TrainingPass:
        """The training forward of :meth:`forward`, with what its losses were computed from.

        Args:
            images, targets, input_size: as :meth:`forward`.
            supervised (Tensor[N] bool | None): the images the detector's own losses train on; the others'
                locations are neither positive nor negative (images without annotations, which only
                distillation trains on). None: all.
        """
        _check_targets(targets, len(images), self.config.num_classes)
        batch, scaled = self.transform(images, targets, input_size)
        outputs, grid = self.head_outputs(batch.tensors)
        valid = valid_locations(grid, batch.image_sizes, self.config.size_divisible)  # [N, A]
        trained = valid if supervised is None else valid & supervised.to(valid.device).unsqueeze(1)
        losses, self.last_stats = self.criterion(outputs, grid, scaled, trained)
        return TrainingPass(losses, batch, scaled, outputs, grid, valid)

    def detect(
        self, batch: ImageBatch, scored: ScoredOutputs, return_distributions: bool = False
    ) -> list[dict[str, Tensor]]:
        """Post-process scored outputs into detections per image, in original image pixels."""
        detections = [
            postprocess_image(
                self.config,
                self.head.box_coding,
                scored.scores[i],
                None if scored.score_factors is None else scored.score_factors[i],
                scored.box_outputs[i],
                scored.grid,
                batch.image_sizes[i],
                return_distributions,
            )
            for i in range(len(batch.image_sizes))
        ]
        return self.transform.postprocess(detections, batch)


def _check_targets(targets: list[dict[str, Tensor]], num_images: int, num_classes: int) -> None:
    if len(targets) != num_images:
        raise ValueError(f"got {num_images} images but {len(targets)} targets")
    for index, target in enumerate(targets):
        boxes, labels = target.get("boxes"), target.get("labels")
        if boxes is None or labels is None:
            raise ValueError(f"targets[{index}] needs 'boxes' and 'labels', has {sorted(target)}")
        if boxes.dim() != 2 or boxes.shape[-1] != 4:
            raise ValueError(f"targets[{index}]['boxes'] has shape {tuple(boxes.shape)}; expected [M, 4] xyxy")
        if labels.shape != boxes.shape[:1]:
            raise ValueError(f"targets[{index}]: {len(labels)} labels for {len(boxes)} boxes")
        if len(boxes) == 0:
            continue
        if not torch.isfinite(boxes).all():
            raise ValueError(f"targets[{index}]['boxes'] contains NaN or infinite values")
        if (boxes[:, 2:] <= boxes[:, :2]).any():
            raise ValueError(f"targets[{index}]['boxes'] has boxes with x2 <= x1 or y2 <= y1 (expected xyxy)")
        if labels.dtype.is_floating_point or labels.min() < 0 or labels.max() >= num_classes:
            raise ValueError(
                f"targets[{index}]['labels'] must be integers in [0, {num_classes - 1}] "
                f"(num_classes={num_classes}, background excluded); got {labels.tolist()[:10]}"
            )
