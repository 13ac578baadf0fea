"""AP and time of fused detections on a labelled dataset: each fusion method against the single model.

The views and the fusions themselves are model-level (:mod:`gfocal.models.fusion`); this module only runs
them over a dataset's images and times them, for ``gfocal analyze fusion``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
from torch import Tensor
from tqdm import tqdm

from gfocal.data import DatasetRecords
from gfocal.data.image_io import decode_image
from gfocal.models import GFLDetector
from gfocal.models.fusion import FUSION_METHODS, FusionMethod, TestTimeAugmentation, fuse_detections, view_detections

__all__ = ["fused_dataset_detections"]


def fused_dataset_detections(
    models: Sequence[GFLDetector],
    records: DatasetRecords,
    tta: TestTimeAugmentation,
    methods: Sequence[FusionMethod] = FUSION_METHODS,
    iou_threshold: float = 0.55,
    batch_size: int = 4,
    max_images: int | None = None,
    progress: bool = True,
) -> dict[str, tuple[dict[int, dict[str, Tensor]], float]]:
    """Detections of the dataset's images per fusion method, and the seconds each took.

    ``"single"`` is the first model alone on the plain view (its own NMS), the baseline. Every
    method's time includes the views' inference, which they share (run once, timed once).

    Returns:
        method -> (image index -> {"boxes", "scores", "labels"} in the image's pixels, seconds).
    """
    num_views = len(models) * tta.num_views
    max_detections = models[0].config.max_detections
    detections: dict[str, dict[int, dict[str, Tensor]]] = {method: {} for method in ("single", *methods)}
    seconds = dict.fromkeys(detections, 0.0)
    chosen = records.images[:max_images]
    for start in tqdm(range(0, len(chosen), batch_size), desc="fusion", unit="batch", disable=not progress):
        images = [decode_image(record.path) for record in chosen[start : start + batch_size]]
        tick = time.perf_counter()
        with torch.no_grad():
            single = models[0].eval()(images)
        seconds["single"] += time.perf_counter() - tick
        tick = time.perf_counter()
        pooled = view_detections(models, images, tta)
        shared = time.perf_counter() - tick
        for method in methods:
            tick = time.perf_counter()
            fused = [
                fuse_detections(p, method, num_views, iou_threshold, max_detections=max_detections) for p in pooled
            ]
            seconds[method] += shared + time.perf_counter() - tick
            detections[method].update(enumerate(fused, start=start))
        detections["single"].update(enumerate(single, start=start))
    return {method: (detections[method], seconds[method]) for method in detections}
