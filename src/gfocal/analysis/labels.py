"""IoU vs centerness as the quality label, measured on the user's data, per FPN level.

For every positive sample that the real ATSS assigner picks on the dataset's
images, two candidate quality labels are computed, as the paper does:

- **IoU**: IoU of the box the model predicts at that location with its
  ground truth (GFL's QFL target; with an untrained model this reflects the
  initial predictions, so pass trained weights for the paper's comparison);
- **centerness**: FCOS centerness of the location's point in the ground truth box.

Per level: histograms of both, their means, and the fraction of tiny labels
(< 0.1), which on P3 shows the paper's point: small objects get near-zero
centerness labels, so well-localised small boxes are ranked last.

Shape letters: N images, A locations, M ground truths per image (padded), P positives.

Reference: PAPER.md "Two observations worth turning into features", 1.
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure  # no pyplot: renders with Agg, leaves the user's backend alone

from gfocal.data import DatasetRecords, DetectionDataset
from gfocal.engine.inference_loop import LoadedImage, run_over_images
from gfocal.models import GFLDetector
from gfocal.models.grid import valid_locations
from gfocal.ops import aligned_box_iou, centerness

__all__ = ["quality_label_statistics", "label_figure"]


def _positive_labels(model: GFLDetector, images: list[torch.Tensor], targets: list[dict[str, torch.Tensor]]):
    """IoU label, centerness label, level index and image index of every positive of one batch: four Tensor[P]."""
    config = model.config
    batch, scaled = model.transform(images, targets)
    scored = model.scored_outputs(batch.tensors)
    grid = scored.grid
    valid = valid_locations(grid, batch.image_sizes, config.size_divisible)  # [N, A]: not another image's padding
    positives = model.assign(grid, scaled, valid, scored).positives
    pos_gt, points, strides = positives.box, positives.point, positives.stride  # [P, 4], [P, 2], [P]
    predicted = model.head.box_coding.decode(positives.gather(scored.box_outputs), points, strides)  # [P, 4]
    levels = (strides.unsqueeze(-1) == strides.new_tensor(grid.level_strides)).float().argmax(-1)  # [P]
    return aligned_box_iou(predicted, pos_gt), centerness(points, pos_gt), levels, positives.image


def quality_label_statistics(
    model: GFLDetector,
    records: DatasetRecords,
    batch_size: int = 4,
    max_images: int | None = None,
    bins: int = 20,
    tiny: float = 0.1,
    progress: bool = True,
    workers: int = 0,
) -> dict[str, Any]:
    """Per-level statistics of the IoU and centerness labels of ATSS positives.

    Args:
        model: the detector whose assigner settings, input size and predicted boxes are used.
        records: the dataset (crowd and difficult boxes are left out, as in training).
        batch_size: images per forward pass.
        max_images: only the first images (None: all).
        bins: histogram bins over [0, 1].
        tiny: threshold of a "tiny" label.
        workers: image-decoding processes (:func:`~gfocal.engine.inference_loop.run_over_images`).

    Returns:
        JSON-ready dict: ``bin_edges`` and per level (``P3``...) ``stride``, ``positives``,
        ``iou`` / ``centerness`` each with ``histogram`` (counts), ``mean``, ``tiny_fraction``.
    """
    model.eval()
    device = next(model.parameters()).device
    images_used = records.images[:max_images]

    def labels(images: list[torch.Tensor], items: list[LoadedImage]) -> list[tuple[np.ndarray, ...]]:
        # The dataset's targets: crowd and difficult boxes left out, boxes in the decoded image's pixels.
        targets = [{k: item.target[k].to(device) for k in ("boxes", "labels")} for item in items]
        iou, centre, levels, image = (t.cpu().numpy() for t in _positive_labels(model, images, targets))
        return [(iou[image == k], centre[image == k], levels[image == k]) for k in range(len(items))]

    chosen = range(len(images_used))
    loop = run_over_images(
        DetectionDataset(records), labels, device, batch_size, workers, chosen, progress=progress, desc="labels"
    )
    collected = [per_image for _, per_image in loop]
    iou, centre, levels = (np.concatenate([c[i] for c in collected]) if collected else np.zeros(0) for i in range(3))
    edges = np.linspace(0.0, 1.0, bins + 1)
    result: dict[str, Any] = {
        "bin_edges": edges.tolist(),
        "tiny_threshold": tiny,
        "images": len(images_used),
        "levels": {},
    }
    for level, stride in enumerate(model.backbone.strides):
        mask = levels == level
        result["levels"][f"P{int(round(math.log2(stride)))}"] = {
            "stride": stride,
            "positives": int(mask.sum()),
            "iou": _summary(iou[mask], edges, tiny),
            "centerness": _summary(centre[mask], edges, tiny),
        }
    return result


def _summary(values: np.ndarray, edges: np.ndarray, tiny: float) -> dict[str, Any]:
    histogram = np.histogram(np.clip(values, 0.0, 1.0), bins=edges)[0]
    empty = len(values) == 0
    return {
        "histogram": histogram.tolist(),
        "mean": None if empty else float(values.mean()),
        "tiny_fraction": None if empty else float((values < tiny).mean()),
    }


def label_figure(statistics: dict[str, Any], dpi: int = 90) -> bytes:
    """PNG bytes: per level, the IoU and centerness label histograms (fractions of positives)."""
    levels = [(name, level) for name, level in statistics["levels"].items() if level["positives"]]
    edges = np.asarray(statistics["bin_edges"])
    figure = Figure(figsize=(5.5, 1.6 * max(len(levels), 1) + 0.4), dpi=dpi)
    axes = figure.subplots(max(len(levels), 1), 1, squeeze=False)
    for axis, (name, level) in zip(axes[:, 0], levels):
        for key, colour in (("iou", "#1f77b4"), ("centerness", "#ff7f0e")):
            counts = np.asarray(level[key]["histogram"], dtype=float) / level["positives"]
            label = f"{key} (mean {level[key]['mean']:.2f}, <{statistics['tiny_threshold']}: {level[key]['tiny_fraction']:.0%})"
            axis.stairs(counts, edges, fill=True, alpha=0.45, color=colour, label=label)
        axis.set_title(f"{name} (stride {level['stride']}): {level['positives']} positives", fontsize=8)
        axis.legend(fontsize=6, frameon=False)
        axis.tick_params(labelsize=6)
        axis.set_xlim(0, 1)
    axes[-1, 0].set_xlabel("quality label of positive samples", fontsize=7)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
