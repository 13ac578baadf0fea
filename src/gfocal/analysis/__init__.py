"""Analysis on top of a trained model: ambiguity mining from the learned box distributions, quality-label statistics.

- :mod:`gfocal.analysis.distributions`: per-edge statistics of a detection's distributions
  in pixels and the box ambiguity score (:func:`edge_statistics`, :func:`to_records`);
- :mod:`gfocal.analysis.probe`: the distributions at the annotated boxes themselves;
- :mod:`gfocal.analysis.evaluation`: AUROC against synthetic data's recorded ambiguous edges;
- :mod:`gfocal.analysis.localisation` (with ``localisation_oracles`` and ``localisation_shape``): where
  any detector's AP75 is lost, in its boxes, its ranking or its duplicates (``benchmarks/localisation.py``).
- :mod:`gfocal.analysis.eval_report` (pictures and page: ``eval_report_html``): ``gfocal eval --report``, the
  PR and F1 curves, best score thresholds, confusion matrix and worst images, from pycocotools' own evaluation.
"""

from gfocal.analysis.distributions import (
    EDGES,
    ambiguity_score,
    annotation_statistics,
    distribution_statistics,
    edge_statistics,
    to_records,
)
from gfocal.analysis.evaluation import ambiguity_labels, auroc, edge_ambiguity_labels
from gfocal.analysis.probe import AnnotationProbe, probe_annotations

__all__ = [
    "EDGES",
    "AnnotationProbe",
    "ambiguity_labels",
    "ambiguity_score",
    "annotation_statistics",
    "auroc",
    "distribution_statistics",
    "edge_ambiguity_labels",
    "edge_statistics",
    "probe_annotations",
    "to_records",
]
