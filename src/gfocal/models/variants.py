"""The paper's variants of the method and the one-stage detectors GFL applies to, as data: each is a few
:class:`ModelConfig` fields.

This table is the one list of them: the ablation trains it, with the sweeps below (``gfocal bench ablation``),
``benchmarks/detectors.py`` trains each detector of :data:`DETECTORS` with and without GFL, the tests run every
variant from it, ``gfocal train --variant ID`` trains one, and README's variant table is generated from it
(``python benchmarks/tables.py --write``).

``classification`` names the quality branch and ``box`` the box coding (keys of
:data:`gfocal.models.components.QUALITY_BRANCHES` and ``BOX_CODINGS``): ``"qfl"`` is the joint
classification-quality score trained with QFL, ``"focal"`` the ATSS and FCOS baselines' sigmoid Focal Loss
with a separate centerness branch (BCE), multiplied into the score at test time, ``"focal_only"``
RetinaNet's Focal Loss without any quality, ``"task_aligned"`` TOOD's loss (QFL towards the task-aligned
assigner's normalised alignment, which also weights the box loss). ``box="dfl"``
predicts a general distribution over ``reg_max + 1`` bins per edge (Integral + GIoU + DFL);
``"dirac"`` regresses each edge directly (GIoU); ``"anchor_delta"`` regresses the deltas of one
square anchor of ``anchor_scale`` strides per location (GIoU, or ``delta_loss`` L1 on the deltas), as
mmdetection's ``ATSSHead``: the paper's ATSS baseline. ``assigner`` picks the positives
(:data:`gfocal.models.components.ASSIGNERS`).

The detectors, and how they differ from mmdetection's by design (the losses and detections of each equal
mmdetection 3.3's on the same outputs: ``tests/interop``, mmdet lane). Every detector runs on gfocal's one
head: shared towers of 3x3 conv + GroupNorm + ReLU, one Scale per level, a class conv and a box conv.

- ``retinanet``: max-IoU assignment (0.5 / 0.4, low-quality matches) of **one** square anchor of
  ``anchor_scale`` (8) strides per location, sigmoid Focal Loss, L1 on the anchor deltas (stds 1, weight 1;
  mmdetection 3.3's ``retinanet_r50_fpn``; ``delta_loss="smooth_l1"`` is Detectron's, ``"giou"`` GIoU on the
  decoded box). Deviation: RetinaNet's nine anchors per location (3 scales x 3 ratios) need a head with nine
  outputs per location, which gfocal's head and location grid do not have; this is ATSS's "RetinaNet
  (#A=1)" (Zhang et al., CVPR 2020, Table 1). mmdetection's RetinaHead has no GroupNorm in its towers.
- ``fcos``: FCOS's assignment (centre sampling, radius 1.5; scale ranges per level), Focal Loss, a
  centerness branch on the regression tower (BCE) and GIoU weighted by the centerness target: mmdetection's
  ``FCOSHead`` as its ``center-normbbox-centeronreg-giou`` config sets it (points at half a stride,
  distances in strides). Its box conv starts at 4 strides per edge, gfocal's Dirac start, not at 0.
- ``atss-anchor`` / ``gfl``: the paper's pair (ATSS's anchor-based head, and GFL on ATSS's assignment).
- ``tood``: TOOD-style: TOOD's task-aligned assignment (top 13 by ``s * IoU**6``) and its loss (QFL towards
  the normalised alignment, GIoU weighted by it) with a plain GFL-style head. TOOD's T-head (task
  decomposition with layer attention, the classification and localisation alignment branches) is not
  built, and TAL assigns from the first step (mmdetection runs ATSS for TOOD's first 4 epochs).

Each ``-gfl`` form keeps its detector's assignment (and point offset) and replaces its classification and
box terms with GFL's: QFL on the joint score towards the predicted box's IoU, and DFL on a general
distribution per edge (Integral + GIoU + DFL). All of them keep gfocal's inference settings (NMS IoU 0.6).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Variant", "VARIANTS", "PAPER_VARIANTS", "DETECTOR_VARIANTS", "SWEEPS", "VARIANT_FIELDS", "DETECTORS"]

#: The ModelConfig fields that tell the variants apart, the columns of README's table (a variant may set others).
VARIANT_FIELDS = ("assigner", "classification", "box", "quality_label", "dgqp")

#: RetinaNet's anchor-delta regression, mmdetection 3.3's ``retinanet_r50_fpn``: L1 on unnormalised deltas.
_RETINANET_BOX = {
    "box": "anchor_delta",
    "delta_loss": "l1",
    "delta_stds": (1.0, 1.0, 1.0, 1.0),
    "loss_bbox_weight": 1.0,
}
#: FCOS's points sit at half a stride (mmdetection's point generator); its GIoU weighs 1.
_FCOS_POINTS = {"assigner": "fcos", "point_offset": 0.5}


@dataclass(frozen=True)
class Variant:
    """A variant: its name in tables, and the model options that make it (on top of the defaults, GFL)."""

    name: str
    overrides: dict[str, Any] = field(default_factory=dict)


#: The paper's ablation (``gfocal bench ablation``'s default), keyed by the short ids that its ``--variants``
#: takes, in the order of the paper's table.
PAPER_VARIANTS: dict[str, Variant] = {
    # The paper's baseline: mmdetection's anchor-based ATSSHead (parity-tested in tests/interop).
    "atss-anchor": Variant(
        "ATSS baseline, the paper's (FL + centerness, anchor deltas)",
        {"classification": "focal", "box": "anchor_delta"},
    ),
    # The same with point distances instead of anchor deltas: the baseline of earlier tables.
    "atss": Variant("ATSS baseline (FL + centerness, Dirac box)", {"classification": "focal", "box": "dirac"}),
    "qfl": Variant("QFL only (Dirac box)", {"classification": "qfl", "box": "dirac"}),
    "dfl": Variant("DFL only (FL + centerness)", {"classification": "focal", "box": "dfl"}),
    "gfl": Variant("GFL = QFL + DFL"),
    "gfl-centerness": Variant("GFL, centerness as quality label", {"quality_label": "centerness"}),
    "gflv2": Variant("GFLv2 (DGQP)", {"dgqp": True}),
}

#: The one-stage detectors GFL applies to besides ATSS, each without and with GFL on the same assignment.
DETECTOR_VARIANTS: dict[str, Variant] = {
    "retinanet": Variant(
        "RetinaNet, one anchor (FL, L1 on anchor deltas)",
        {"assigner": "max_iou", "classification": "focal_only", **_RETINANET_BOX},
    ),
    "retinanet-gfl": Variant("RetinaNet + GFL (max-IoU anchors, QFL + DFL)", {"assigner": "max_iou"}),
    "fcos": Variant(
        "FCOS (FL + centerness, GIoU)",
        {**_FCOS_POINTS, "classification": "focal", "box": "dirac", "loss_bbox_weight": 1.0},
    ),
    "fcos-gfl": Variant("FCOS + GFL (FCOS assignment, QFL + DFL)", _FCOS_POINTS),
    "tood": Variant(
        "TOOD-style (TAL, alignment-target QFL, GIoU)",
        {"assigner": "task_aligned", "classification": "task_aligned", "box": "dirac"},
    ),
    "tood-gfl": Variant("TOOD-style + GFL (TAL, QFL + DFL)", {"assigner": "task_aligned"}),
}

#: Every variant by id: ``gfocal train --variant``, the tests and README's table read this.
VARIANTS: dict[str, Variant] = {**PAPER_VARIANTS, **DETECTOR_VARIANTS}

#: Each detector's pair of variant ids: (its own losses, GFL on the same assignment). ATSS's is the paper's.
DETECTORS: dict[str, tuple[str, str]] = {
    "retinanet": ("retinanet", "retinanet-gfl"),
    "fcos": ("fcos", "fcos-gfl"),
    "atss": ("atss-anchor", "gfl"),
    "tood": ("tood", "tood-gfl"),
}

#: Beyond the variants, for the ablation: GFL with one setting changed.
SWEEPS: dict[str, Variant] = {
    "reg_max4": Variant("GFL reg_max=4", {"reg_max": 4}),
    "reg_max8": Variant("GFL reg_max=8", {"reg_max": 8}),
    "beta1": Variant("GFL beta=1", {"qfl_beta": 1.0}),
}
