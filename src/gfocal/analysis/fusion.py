"""AP and time of fused detections on a labelled dataset: each fusion method against the single model.

The views and the fusions themselves are model-level (:mod:`gfocal.models.fusion`); this module only runs
them over a dataset's images and times them, for ``gfocal analyze fusion``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from torch import Tensor

from gfocal.data import DatasetRecords, DetectionDataset
from gfocal.engine.inference_loop import LoadedImage, run_over_images
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
    workers: int = 0,
) -> dict[str, tuple[dict[int, dict[str, Tensor]], float]]:
    """Detections of the dataset's images per fusion method, and the seconds each took.

    ``"single"`` is the first model alone on the plain view (its own NMS), the baseline. Every
    method's time includes the views' inference, which they share (run once, timed once), not the decoding
    (in ``workers`` processes, :func:`~gfocal.engine.inference_loop.run_over_images`).

    Returns:
        method -> (image index -> {"boxes", "scores", "labels"} in the image's pixels, seconds).
    """
    num_views = len(models) * tta.num_views
    max_detections = models[0].config.max_detections
    seconds = dict.fromkeys(("single", *methods), 0.0)

    def fuse(images: list[Tensor], _: list[LoadedImage]) -> list[dict[str, dict[str, Tensor]]]:
        tick = time.perf_counter()
        single = models[0].eval()(images)
        seconds["single"] += time.perf_counter() - tick
        tick = time.perf_counter()
        pooled = view_detections(models, images, tta)
        shared = time.perf_counter() - tick
        per_image: list[dict[str, dict[str, Tensor]]] = [{"single": detections} for detections in single]
        for method in methods:
            tick = time.perf_counter()
            fused = [
                fuse_detections(p, method, num_views, iou_threshold, max_detections=max_detections) for p in pooled
            ]
            seconds[method] += shared + time.perf_counter() - tick
            for slot, detections in zip(per_image, fused):
                slot[method] = detections
        return per_image

    device = next(models[0].parameters()).device
    chosen = range(len(records.images[:max_images]))
    loop = run_over_images(
        DetectionDataset(records), fuse, device, batch_size, workers, chosen, progress=progress, desc="fusion"
    )
    detections: dict[str, dict[int, dict[str, Tensor]]] = {method: {} for method in seconds}
    for item, per_method in loop:
        for method, found in per_method.items():
            detections[method][item.index] = found
    return {method: (detections[method], seconds[method]) for method in detections}
