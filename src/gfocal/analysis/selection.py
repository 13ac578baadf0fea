"""Active learning: rank unlabelled images by what one forward pass says the model is unsure of.

Per image, from ``model(images, return_distributions=True)`` (no labels, no second pass):

- **localisation** (:func:`localisation_uncertainty`): the score-weighted mean, over the image's
  detections, of each box's *relative spread*: the mean over its four edges of the edge's std
  divided by the box's width (left, right) or height (top, bottom). Scale-free, so a large
  object is not uncertain just for being large; weighted by score, so background noise with a
  wide distribution counts little.
- **classification** (:func:`classification_uncertainty`): ``1 - min_k |2 s_k - 1|``, how close the
  image's most undecided detection score is to 0.5 (the sigmoid margin; 1 at 0.5, 0 when every
  score is 0 or 1).
- **uncertainty**: the mean of the two as percentile ranks over the pool (the two live on
  different scales; ranks make them comparable without a tuned weight).
- optionally **diversity** (:func:`choose`): each FPN level's features averaged over the image,
  concatenated and L2-normalised, captured from the same forward pass; a greedy pick that trades
  uncertainty for distance to the images already chosen.

Shape letters: K detections of one image, P images in the pool, F embedding features.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gfocal.analysis.calibration import average_ranks
from gfocal.analysis.distributions import require_distribution_head
from gfocal.data import ImageFiles
from gfocal.engine.inference_loop import LoadedImage, run_over_images
from gfocal.models import GFLDetector

__all__ = [
    "ImageScore",
    "choose",
    "classification_uncertainty",
    "localisation_uncertainty",
    "relative_spread",
    "score_images",
]


@dataclass(frozen=True)
class ImageScore:
    """One unlabelled image's scores (see the module doc); ``uncertainty`` is set over the whole pool.

    embedding (float [F]): L2-normalised pooled FPN features, for diversity.
    boxes (float [K, 4]), scores (float [K]), edge_std (float [K, 4]): the detections, original pixels.
    """

    path: Path
    width: int
    height: int
    localisation: float
    classification: float
    uncertainty: float
    embedding: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    edge_std: np.ndarray


def relative_spread(boxes: Tensor, edge_std: Tensor, min_side: float = 1.0) -> Tensor:
    """Each box's mean edge std relative to its size.

    Args:
        boxes (Tensor[K, 4]): xyxy pixels. edge_std (Tensor[K, 4]): std of left, top, right, bottom, pixels.
        min_side: sides below this many pixels count as this (degenerate boxes).

    Returns:
        Tensor[K]: ``mean(std_l / w, std_t / h, std_r / w, std_b / h)``, >= 0.
    """
    width = (boxes[:, 2] - boxes[:, 0]).clamp_min(min_side)
    height = (boxes[:, 3] - boxes[:, 1]).clamp_min(min_side)
    return (edge_std / torch.stack((width, height, width, height), dim=-1)).mean(dim=-1)


def localisation_uncertainty(scores: Tensor, spread: Tensor) -> float:
    """Score-weighted mean of the boxes' :func:`relative_spread` (Tensor[K] each); 0 without detections."""
    total = scores.sum()
    return float((scores * spread).sum() / total) if len(scores) and total > 0 else 0.0


def classification_uncertainty(scores: Tensor) -> float:
    """``1 - min |2 s - 1|`` over the detection scores (Tensor[K] in [0, 1]); 0 without detections."""
    return float(1.0 - (2.0 * scores - 1.0).abs().min()) if len(scores) else 0.0


def score_images(
    model: GFLDetector, paths: Sequence[Path], batch_size: int = 4, progress: bool = True, workers: int = 0
) -> list[ImageScore]:
    """One forward pass per batch of ``paths``; the scores of every image that decodes.

    Files that cannot be decoded are skipped with a :class:`~gfocal.data.DatasetWarning` naming each.
    The model must have a distribution head (``box="dfl"``). ``workers``: image-decoding processes
    (:func:`~gfocal.engine.inference_loop.run_over_images`).
    """
    require_distribution_head(model, "selection")
    model.eval()
    device = next(model.parameters()).device
    features: list[Tensor] = []

    def detect(images: list[Tensor], _: list[LoadedImage]) -> list[tuple[dict[str, Tensor], Tensor]]:
        features.clear()
        return list(zip(model(images, return_distributions=True), features[0]))

    rows: list[dict[str, Any]] = []
    hook = model.backbone.register_forward_hook(lambda module, inputs, output: features.append(_pooled(output)))
    try:
        loop = run_over_images(ImageFiles(paths), detect, device, batch_size, workers, progress=progress, desc="select")
        for item, (detection, embedding) in loop:
            scores = detection["scores"].float()
            spread = relative_spread(detection["boxes"].float(), detection["edge_std"].float())
            height, width = item.original_size
            rows.append(
                {"path": paths[item.index], "width": width, "height": height,
                 "localisation": localisation_uncertainty(scores, spread),
                 "classification": classification_uncertainty(scores), "embedding": embedding.cpu().numpy(),
                 **{k: detection[k].float().cpu().numpy() for k in ("boxes", "scores", "edge_std")}}
            )  # fmt: skip
    finally:
        hook.remove()
    combined = _mean_rank(np.array([[r["localisation"], r["classification"]] for r in rows]).reshape(-1, 2))  # [P]
    return [ImageScore(**row, uncertainty=float(u)) for row, u in zip(rows, combined)]


def _pooled(features: Sequence[Tensor]) -> Tensor:
    """Tensor[N, F]: each level's features (Tensor[N, C_l, H_l, W_l]) averaged over space, concatenated, L2-normalised.

    The average includes the batch's zero padding, which shifts images of other sizes a little alike.
    """
    pooled = torch.cat([level.float().mean(dim=(-2, -1)) for level in features], dim=1)  # [N, F]
    return torch.nn.functional.normalize(pooled, dim=1)


def _mean_rank(values: np.ndarray) -> np.ndarray:
    """float [P]: the mean over columns of each value's percentile rank in its column (ties averaged), in [0, 1]."""
    if len(values) < 2:
        return np.ones(len(values))
    ranks = np.stack([average_ranks(column) for column in values.T], axis=1)  # [P, columns]
    return ranks.mean(axis=1) / (len(values) - 1)


def choose(scores: Sequence[ImageScore], budget: int, diversity: float = 0.0) -> list[int]:
    """Indices of the ``budget`` images to label, in the order chosen.

    Greedy: each step takes the image maximising ``(1 - diversity) * uncertainty + diversity * d``,
    where ``d`` is its cosine distance to the nearest image already chosen, halved into [0, 1] (1
    for the first pick). ``diversity=0`` is the top ``budget`` by uncertainty.

    Args:
        scores: from :func:`score_images`.
        budget: how many to choose, >= 1 (all of them when the pool is smaller).
        diversity: in [0, 1].
    """
    if budget < 1:
        raise ValueError(f"budget must be >= 1, got {budget}")
    if not 0.0 <= diversity <= 1.0:
        raise ValueError(f"diversity must be in [0, 1], got {diversity}")
    if not scores:
        return []
    uncertainty = np.array([s.uncertainty for s in scores])  # [P]
    embeddings = np.stack([s.embedding for s in scores])  # [P, F]
    distance = np.ones(len(scores))  # to the nearest chosen image, in [0, 1]
    available = np.ones(len(scores), dtype=bool)
    chosen: list[int] = []
    for _ in range(min(budget, len(scores))):
        gain = np.where(available, (1.0 - diversity) * uncertainty + diversity * distance, -np.inf)
        best = int(np.argmax(gain))  # ties: the earlier image
        chosen.append(best)
        available[best] = False
        distance = np.minimum(distance, np.clip((1.0 - embeddings @ embeddings[best]) / 2.0, 0.0, 1.0))
    return chosen
