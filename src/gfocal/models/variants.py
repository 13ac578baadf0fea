"""The paper's variants of the method, as data: each is a few :class:`ModelConfig` fields.

This table is the one list of them: the ablation trains it, with the sweeps below (``gfocal bench ablation``), the tests
run every variant from it, and README's variant table is generated from it
(``python benchmarks/tables.py --write``).

``classification`` names the quality branch and ``box`` the box coding (keys of
:data:`gfocal.models.components.QUALITY_BRANCHES` and ``BOX_CODINGS``): ``"qfl"`` is the joint
classification-quality score trained with QFL, ``"focal"`` the ATSS baseline's sigmoid Focal Loss
with a separate centerness branch (BCE), multiplied into the score at test time. ``box="dfl"``
predicts a general distribution over ``reg_max + 1`` bins per edge (Integral + GIoU + DFL);
``"dirac"`` regresses each edge directly (GIoU); ``"anchor_delta"`` regresses the deltas of one
square anchor of ``anchor_scale`` strides per location (GIoU), as mmdetection's ``ATSSHead``: the
paper's ATSS baseline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Variant", "VARIANTS", "SWEEPS", "VARIANT_FIELDS"]

#: The ModelConfig fields a variant sets.
VARIANT_FIELDS = ("classification", "box", "quality_label", "dgqp")


@dataclass(frozen=True)
class Variant:
    """A variant: its name in tables, and the model options that make it (on top of the defaults, GFL)."""

    name: str
    overrides: dict[str, Any] = field(default_factory=dict)


#: Keyed by the short ids that ``gfocal bench ablation --variants`` takes, in the order of the paper's table.
VARIANTS: dict[str, Variant] = {
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

#: Beyond the variants, for the ablation: GFL with one setting changed.
SWEEPS: dict[str, Variant] = {
    "reg_max4": Variant("GFL reg_max=4", {"reg_max": 4}),
    "reg_max8": Variant("GFL reg_max=8", {"reg_max": 8}),
    "beta1": Variant("GFL beta=1", {"qfl_beta": 1.0}),
}
