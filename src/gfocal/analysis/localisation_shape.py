"""Distribution shape at the objects: where a gfocal model's edge distributions are wide or two-peaked,
and how the IoU of an object's best match falls as they widen.

Each annotated object is read at the detection that matched it best (:func:`object_matches`, the
match whose IoU and edge errors :mod:`gfocal.analysis.localisation` reports): the four edge
distributions the model output with that detection (``return_distributions=True``), summarised by
:func:`~gfocal.analysis.distributions.edge_statistics`. Reading them at the detection, rather than
at a probe location (:mod:`gfocal.analysis.probe`), ties each width to the very box whose IoU is
measured; an object that no detection overlaps has no distributions here and is left out.

Shape letters: K detections of one image, O objects read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from gfocal.analysis.calibration import rank_correlation
from gfocal.analysis.distributions import EDGES, edge_statistics, require_distribution_head
from gfocal.analysis.localisation import object_matches, quantiles
from gfocal.analysis.matching import ImagePairs, image_pairs
from gfocal.data import DatasetRecords, DetectionDataset
from gfocal.engine.inference_loop import LoadedImage, run_over_images
from gfocal.models import GFLDetector

__all__ = ["predict_with_shapes", "shape_at_objects"]


def predict_with_shapes(
    model: GFLDetector, records: DatasetRecords, batch_size: int = 4, workers: int = 0, progress: bool = False
) -> tuple[dict[int, dict[str, Tensor]], dict[int, dict[str, Tensor]]]:
    """Run a distribution-head model over ``records`` and keep each detection's edge shape.

    Args:
        model: a detector with ``box="dfl"``, on the device it runs on; run in eval mode.
        records: the labelled dataset; images are fed as decoded, as ``gfocal eval`` feeds them.
        batch_size, workers: see :func:`~gfocal.engine.inference_loop.run_over_images`.

    Returns:
        (detections, shapes), both keyed by image index: detections {"boxes" [K, 4] xyxy original
        pixels, "scores" [K], "labels" [K]} (for :func:`~gfocal.analysis.localisation.diagnose_localisation`);
        shapes {"std" (Tensor[K, 4]): each edge distribution's std in pixels, the model's
        ``std_scale`` applied; "two_peaked" (Tensor[K, 4] bool): it has two or more modes}.
    """
    require_distribution_head(model, "the distribution shape at the objects")
    model.eval()
    device = next(model.parameters()).device

    def detect(images: list[Tensor], _: list[LoadedImage]) -> list[dict[str, Tensor]]:
        return model(images, return_distributions=True)

    detections, shapes = {}, {}
    loop = run_over_images(
        DetectionDataset(records), detect, device, batch_size, workers, progress=progress, desc="localisation"
    )
    for item, detection in loop:
        statistics = edge_statistics(detection)
        detections[item.index] = {key: detection[key].cpu() for key in ("boxes", "scores", "labels")}
        shapes[item.index] = {"std": statistics["std"].cpu(), "two_peaked": (statistics["num_modes"] >= 2).cpu()}
    return detections, shapes


def shape_at_objects(
    records: Any,
    detections: Mapping[int, Mapping[str, Any]],
    shapes: Mapping[int, Mapping[str, Tensor]],
    score_threshold: float = 0.3,
    min_iou: float = 0.3,
) -> dict[str, Any]:
    """The edge distributions at each object's best match: their width, two peaks, and the IoU they go with.

    Args:
        records, detections: as for :func:`~gfocal.analysis.localisation.diagnose_localisation`.
        shapes: per image index, per detection of ``detections`` (same order): "std" (Tensor[K, 4],
            pixels) and "two_peaked" (Tensor[K, 4] bool), as :func:`predict_with_shapes` returns them.
        score_threshold: the least score of a best match (as in the diagnosis).
        min_iou: the least IoU of a best match to be read, in (0, 1]: below it the detection is not
            of the object.

    Returns:
        JSON-ready dict: ``objects`` read; per edge (``left``...) ``std_relative`` (:func:`quantiles`
        of the std over the annotated width for left/right, height for top/bottom) and
        ``share_two_peaked``; ``iou_by_width_quartile``: the objects cut into four equal groups by
        their width (mean relative std over the edges), each with ``objects``, ``width_low``,
        ``width_high`` and ``median_iou``; ``spearman_width_iou`` (:func:`rank_correlation`);
        ``median_iou_two_peaked`` and ``median_iou_one_peak``: objects with any two-peaked edge, and the rest.
    """
    if not 0.0 < min_iou <= 1.0:
        raise ValueError(f"min_iou must be in (0, 1], got {min_iou}")
    pairs = image_pairs(records, detections)
    std, two_peaked = _per_detection(pairs, shapes)  # [sum K, 4] each
    matches = object_matches(pairs, score_threshold)
    read = matches.iou >= min_iou
    # Every image's detections in one row: the detection k of image i is row offset[i] + k.
    counts = torch.tensor([len(image.boxes) for image in pairs])
    rows = (torch.cumsum(counts, 0) - counts)[matches.image[read]] + matches.detection[read]  # [O]
    std, two_peaked = std[rows], two_peaked[rows]  # [O, 4]
    gt = matches.gt_boxes[read]
    relative = std / (gt[:, 2:] - gt[:, :2]).repeat(1, 2)  # [O, 4]
    iou = matches.iou[read]
    edges = {
        edge: {
            "std_relative": quantiles(relative[:, j]),
            "share_two_peaked": float(two_peaked[:, j].double().mean()) if len(iou) else None,
        }
        for j, edge in enumerate(EDGES)
    }
    width = relative.mean(dim=1)  # [O]
    any_two = two_peaked.any(dim=1)
    return {
        "objects": len(iou),
        "settings": {"score_threshold": score_threshold, "min_iou": min_iou},
        "edges": edges,
        "iou_by_width_quartile": _by_quartile(width, iou),
        "spearman_width_iou": rank_correlation(width.numpy(), iou.numpy()),
        "median_iou_two_peaked": quantiles(iou[any_two])["p50"],
        "median_iou_one_peak": quantiles(iou[~any_two])["p50"],
    }


def _per_detection(pairs: list[ImagePairs], shapes: Mapping[int, Mapping[str, Tensor]]) -> tuple[Tensor, Tensor]:
    """Every image's ``std`` and ``two_peaked`` one after another (Tensor[sum K, 4] each), checked against
    its detections."""
    stds, peaks = [], []
    for index, image in enumerate(pairs):
        count = len(image.boxes)
        shape = shapes.get(index) or {"std": torch.zeros(0, 4), "two_peaked": torch.zeros(0, 4)}
        if any(tuple(shape[key].shape) != (count, 4) for key in ("std", "two_peaked")):
            raise ValueError(f"image {index}: shapes must be [K, 4] for its K={count} detections")
        stds.append(shape["std"].double())
        peaks.append(shape["two_peaked"].bool())
    return torch.cat(stds), torch.cat(peaks)


def _by_quartile(width: Tensor, iou: Tensor) -> list[dict[str, Any]]:
    """Objects in four groups of (nearly) equal size by ``width`` (Tensor[O]): their range and median ``iou``."""
    order = torch.argsort(width, stable=True)
    groups = []
    for part in torch.tensor_split(order, 4):
        if len(part) == 0:
            continue
        groups.append(
            {
                "objects": len(part),
                "width_low": float(width[part].min()),
                "width_high": float(width[part].max()),
                "median_iou": quantiles(iou[part])["p50"],
            }
        )
    return groups
