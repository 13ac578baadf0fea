"""COCO-style evaluation (AP, AP50, AP75, AP small/medium/large, per-class AP) of any dataset in our records.

The ground truth is converted in memory to a COCO dict; crowd and "difficult"
boxes become ``iscrowd=1``, so matching them is neither rewarded nor penalised.
Ground-truth areas, which set the small/medium/large ranges, are the dataset's own COCO ``area``
where the file has one (as pycocotools uses it) and box areas (w x h) otherwise.

Coordinates: the model resizes the images it is given and maps its detections
back to them; a dataset whose pipeline resized the image too records its
``scale``, and the detections are mapped back once more to the *original* file
(:func:`gfocal.image_geometry.to_original_pixels`), so results compare with the
untouched annotations and do not depend on the evaluation image size.

Metrics where COCO has nothing to measure (e.g. AP small with no small objects,
the AP of a class without ground truth) are -1.0, as pycocotools prints them.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from gfocal.data import DatasetError, DetectionDataset, collate_detection, detect_format, load_dataset
from gfocal.engine.distributed import all_gather_objects, broadcast_object, rank_and_world, resolve_device
from gfocal.engine.inference_loop import LoadedImage, run_over_images
from gfocal.fileio import atomic_write_bytes
from gfocal.image_geometry import to_original_pixels
from gfocal.models import load_model
from gfocal.models.fusion import FusedDetector, FusionMethod, TestTimeAugmentation
from gfocal.models.precision import autocast as precision_autocast
from gfocal.models.precision import prepare_for_inference, resolve_precision
from gfocal.tiling import TiledDetector, TilingConfig

__all__ = [
    "Evaluation",
    "coco_evaluation",
    "coco_ground_truth",
    "coco_metrics",
    "evaluate_detections",
    "gather_detections",
    "run_evaluation",
    "to_original_coordinates",
    "predict_dataset",
    "evaluate_model",
    "model_evaluation",
    "evaluate_weights",
    "save_results",
    "format_results",
]

METRIC_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")

Detections = Mapping[int, Mapping[str, Any]]  # image index -> {"boxes" [K,4] xyxy, "scores" [K], "labels" [K]}


def coco_ground_truth(records: Any) -> dict[str, Any]:
    """A COCO ground-truth dict for ``records`` (``DatasetRecords``); image ids are indices into ``records.images``.

    Annotation ids start at 1 (pycocotools treats id 0 as "unmatched").
    """
    images, annotations = [], []
    for index, image in enumerate(records.images):
        images.append({"id": index, "width": int(image.width), "height": int(image.height)})
        for ann in image.annotations:
            x1, y1, x2, y2 = (float(v) for v in ann.box)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": index,
                    "category_id": int(ann.label),
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": ann.evaluation_area,
                    "iscrowd": int(bool(ann.iscrowd or ann.difficult)),
                }
            )
    categories = [{"id": k, "name": name} for k, name in enumerate(records.class_names)]
    return {"images": images, "annotations": annotations, "categories": categories}


def _detections_to_coco(detections: Detections) -> list[dict[str, Any]]:
    results = []
    for image_id, det in detections.items():
        boxes = np.asarray(det["boxes"], dtype=np.float64).reshape(-1, 4)  # [K, 4] xyxy
        wh = boxes[:, 2:] - boxes[:, :2]
        for (x1, y1), (w, h), score, label in zip(
            boxes[:, :2], wh, np.asarray(det["scores"]), np.asarray(det["labels"])
        ):
            results.append(
                {
                    "id": len(results) + 1,
                    "image_id": int(image_id),
                    "category_id": int(label),
                    "bbox": [float(x1), float(y1), float(w), float(h)],
                    "area": float(w * h),
                    "score": float(score),
                    "iscrowd": 0,
                }
            )
    return results


def coco_evaluation(records: Any, detections: Detections, max_detections: int = 100) -> Any:
    """pycocotools' evaluation of ``detections`` against ``records``, evaluated and accumulated.

    Its arrays are what every number of ``gfocal eval`` (and of its ``--report``) is read from:
    ``eval["precision"]`` [T IoU thresholds, R recall points, K classes, A areas, M max dets] and ``evalImgs``
    (per class, area and image: ``dtMatches`` [T, D], ``gtMatches`` [T, G], ``dtScores`` [D], ``dtIgnore``,
    ``gtIgnore``). Arguments as :func:`evaluate_detections`; category ids are labels, image ids indices.

    Returns:
        ``pycocotools.cocoeval.COCOeval``, with ``params.maxDets = [1, 10, max_detections]``.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_dict = coco_ground_truth(records)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        gt, dt = COCO(), COCO()
        gt.dataset = gt_dict
        gt.createIndex()
        # Built directly rather than with gt.loadRes, which rejects an empty result list.
        dt.dataset = {
            "images": gt_dict["images"],
            "categories": gt_dict["categories"],
            "annotations": _detections_to_coco(detections),
        }
        dt.createIndex()
        coco_eval = COCOeval(gt, dt, iouType="bbox")
        coco_eval.params.maxDets = [1, 10, max_detections]
        coco_eval.evaluate()
        coco_eval.accumulate()
    return coco_eval


def evaluate_detections(records: Any, detections: Detections, max_detections: int = 100) -> dict[str, Any]:
    """COCO metrics of ``detections`` (in original image pixels) against ``records``.

    Args:
        records: ``DatasetRecords`` (images with annotations, ``class_names``).
        detections: image index -> {"boxes" [K,4] xyxy pixels, "scores" [K], "labels" [K] in 0..C-1};
            missing images have no detections. May be empty (every AP is then 0).
        max_detections: detections per image (and class) that count, best first: pycocotools' largest
            ``maxDets`` (COCO's 100). A scene with more objects than this cannot reach AP 1: raise it for
            dense scenes.

    Returns:
        :func:`coco_metrics` of :func:`coco_evaluation`.
    """
    return coco_metrics(coco_evaluation(records, detections, max_detections), records.class_names)


def coco_metrics(coco_eval: Any, class_names: Sequence[str]) -> dict[str, Any]:
    """The summary of a :func:`coco_evaluation`.

    Returns:
        ``{"AP": ..., "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"``
        (floats in [0, 1], or -1.0; "AR100" is the recall at ``max_detections``),
        ``"AP_per_iou"``: {"0.50": AP at IoU 0.50, "0.55": ..., "0.95": ...} (COCO's ten thresholds, whose
        mean is "AP"),
        ``"per_class": [{"class", "label", "num_gt", "AP", "AP50"}, ...]``, ``"max_detections"``, and
        ``"images_over_max_detections"``: how many images have more ground-truth boxes than ``max_detections``
        (their AP is capped), ``"most_ground_truth"``: the most ground-truth boxes in one image}.
    """
    with contextlib.redirect_stdout(io.StringIO()):
        coco_eval.summarize()
    max_detections = coco_eval.params.maxDets[-1]
    annotations = [a for a in coco_eval.cocoGt.dataset["annotations"] if not a["iscrowd"]]
    results: dict[str, Any] = {name: float(v) for name, v in zip(METRIC_NAMES, coco_eval.stats)}
    precision = coco_eval.eval["precision"]  # [T IoU thresholds, R recall points, K classes, A areas, M max dets]
    # pycocotools' summarize scores AP (its stats[0] alone) at maxDets=100 whatever maxDets holds: -1 otherwise.
    results["AP"] = _mean_valid(precision[:, :, :, 0, -1])
    results["AP_per_iou"] = {
        f"{threshold:.2f}": _mean_valid(precision[t, :, :, 0, -1])
        for t, threshold in enumerate(coco_eval.params.iouThrs)
    }
    num_gt = np.bincount([a["category_id"] for a in annotations], minlength=len(class_names))
    results["per_class"] = [
        {
            "class": name,
            "label": k,
            "num_gt": int(num_gt[k]),
            "AP": _mean_valid(precision[:, :, k, 0, -1]),
            "AP50": _mean_valid(precision[0, :, k, 0, -1]),
        }
        for k, name in enumerate(class_names)
    ]
    per_image = np.bincount([a["image_id"] for a in annotations], minlength=1)
    results["max_detections"] = max_detections
    results["images_over_max_detections"] = int((per_image > max_detections).sum())
    results["most_ground_truth"] = int(per_image.max())
    return results


def _mean_valid(values: np.ndarray) -> float:
    valid = values[values > -1]
    return float(valid.mean()) if valid.size else -1.0


def to_original_coordinates(
    prediction: Mapping[str, torch.Tensor], scale: float | tuple[float, float], orig_size: tuple[int, int]
) -> dict[str, np.ndarray]:
    """Map one image's detections from the transformed image to the original one (see ``to_original_pixels``).

    Args:
        prediction: {"boxes" [K,4] xyxy in transformed pixels, "scores" [K], "labels" [K]}.
        scale: transformed size / original size, one factor or ``(sx, sy)`` (the target's ``scale_xy``).
        orig_size: original (height, width) in pixels.
    """
    scale_xy = tuple(scale) if isinstance(scale, (tuple, list)) else (scale, scale)
    boxes = to_original_pixels(prediction["boxes"].detach().float().cpu(), scale_xy, orig_size)  # [K, 4]
    return {
        "boxes": boxes.numpy(),
        "scores": prediction["scores"].detach().float().cpu().numpy(),
        "labels": prediction["labels"].detach().cpu().numpy(),
    }


def predict_dataset(
    model: nn.Module,
    dataset: Dataset,
    device: torch.device,
    batch_size: int = 8,
    workers: int = 0,
    indices: Sequence[int] | None = None,
    collate: Callable[[list[Any]], Any] = collate_detection,
    autocast: Callable[[], AbstractContextManager[None]] = contextlib.nullcontext,
    progress: bool = False,
) -> dict[int, dict[str, np.ndarray]]:
    """Run ``model`` in eval mode over ``dataset`` (the ``indices`` of it; None: all, see :func:`run_over_images`),
    with a bar counting the images if ``progress``.

    Returns:
        per target ``image_id``: {"boxes" [K,4] xyxy, "scores" [K], "labels" [K]} in original pixels.
    """

    def detect(images: list[torch.Tensor], _: list[LoadedImage]) -> list[dict[str, torch.Tensor]]:
        with autocast():
            return model(images)

    was_training = model.training
    model.eval()
    detections = {}
    for item, output in run_over_images(
        dataset, detect, device, batch_size, workers, indices, collate, progress=progress, desc="eval"
    ):
        target = item.target
        scale = target.get("scale_xy", target.get("scale", 1.0))
        detections[int(target["image_id"])] = to_original_coordinates(output, scale, item.original_size)
    model.train(was_training)
    return detections


def evaluate_model(
    model: nn.Module,
    dataset: Dataset,
    records: Any,
    collate: Callable[[list[Any]], Any],
    device: torch.device,
    batch_size: int = 8,
    workers: int = 0,
    autocast: Callable[[], AbstractContextManager[None]] = contextlib.nullcontext,
    max_detections: int = 100,
    progress: bool = False,
) -> dict[str, Any]:
    """Predict on ``dataset`` (shared between processes when distributed) and compute COCO metrics.

    Every process must call this; all receive the same results: the ``results`` of :func:`model_evaluation`.
    """
    return model_evaluation(
        model, dataset, records, collate, device, batch_size, workers, autocast, max_detections, progress
    ).results


def model_evaluation(
    model: nn.Module,
    dataset: Dataset,
    records: Any,
    collate: Callable[[list[Any]], Any],
    device: torch.device,
    batch_size: int = 8,
    workers: int = 0,
    autocast: Callable[[], AbstractContextManager[None]] = contextlib.nullcontext,
    max_detections: int = 100,
    progress: bool = False,
) -> Evaluation:
    """:func:`evaluate_model`, with what its results were computed from (what a training run's subscribers read).

    Every process must call this. All receive the same ``results`` (computed on rank 0) and every image's
    ``detections``; only rank 0 holds the ``coco_eval`` (None on the others).
    ``max_detections``: see :func:`evaluate_detections`. ``progress``: rank 0 shows a bar of its images.
    """
    detections = gather_detections(model, dataset, device, batch_size, workers, collate, autocast, progress)
    coco_eval = coco_evaluation(records, detections, max_detections) if rank_and_world()[0] == 0 else None
    results = broadcast_object(coco_metrics(coco_eval, records.class_names) if coco_eval is not None else None)
    return Evaluation(results, records, detections, coco_eval)


def gather_detections(
    model: nn.Module,
    dataset: Dataset,
    device: torch.device,
    batch_size: int = 8,
    workers: int = 0,
    collate: Callable[[list[Any]], Any] = collate_detection,
    autocast: Callable[[], AbstractContextManager[None]] = contextlib.nullcontext,
    progress: bool = False,
) -> dict[int, dict[str, np.ndarray]]:
    """:func:`predict_dataset` over all of ``dataset``, shared between processes when distributed.

    Every process must call this; all receive every image's detections.
    """
    rank, world_size = rank_and_world()
    shard = range(rank, len(dataset), world_size)  # type: ignore[arg-type]
    detections = predict_dataset(
        model, dataset, device, batch_size, workers, shard, collate, autocast, progress=progress and rank == 0
    )
    return {k: v for part in all_gather_objects(detections) for k, v in part.items()}


@dataclass(frozen=True)
class Evaluation:
    """One evaluation and what it was computed from, so a report reads the very detections the AP scored.

    results: :func:`coco_metrics`. records: the dataset (``DatasetRecords``). detections: image index ->
    {"boxes" [K,4] xyxy original pixels, "scores" [K], "labels" [K]}. coco_eval: :func:`coco_evaluation`
    (None on processes other than rank 0 of a distributed :func:`model_evaluation`).
    """

    results: dict[str, Any]
    records: Any
    detections: dict[int, dict[str, np.ndarray]]
    coco_eval: Any


def evaluate_weights(weights: str | os.PathLike[str], data: str | os.PathLike[str], **options: Any) -> dict[str, Any]:
    """COCO metrics of a weights file on a labelled dataset: the ``results`` of :func:`run_evaluation`."""
    return run_evaluation(weights, data, **options).results


def run_evaluation(
    weights: str | os.PathLike[str],
    data: str | os.PathLike[str],
    images: str | None = None,
    split: str | None = None,
    batch_size: int = 8,
    workers: int = 2,
    image_size: int | None = None,
    precision: str = "auto",
    compile: bool = False,
    device: str | torch.device | None = None,
    tiling: TilingConfig | None = None,
    max_detections: int = 100,
    tta: TestTimeAugmentation | None = None,
    fusion: FusionMethod = "distribution",
    progress: bool = False,
    overrides: Mapping[str, Any] | None = None,
) -> Evaluation:
    """COCO metrics of a weights file on a labelled dataset (what ``gfocal eval`` prints), with their sources.

    ``split`` defaults to "val" for a YOLO yaml. The images are decoded at their own size and the model
    resizes them, exactly as ``gfocal predict`` feeds it. With ``tiling``, each whole image is predicted
    on tiles (``batch_size`` tiles per pass) and scored against its own annotations, as ``gfocal predict
    --tile`` would find them. With ``tta``, every view of each image is predicted and the views merged by
    ``fusion`` (:class:`~gfocal.models.fusion.FusedDetector`), as ``gfocal predict --tta``; not with ``tiling``.
    ``max_detections``: see :func:`evaluate_detections`. ``progress``: a bar counting the images.
    ``overrides``: inference options of the model's config (e.g. ``{"nms_iou_threshold": 0.5}``).

    Raises:
        DatasetError: the dataset has no box, or its classes are not the model's (label k of the model
            would be scored as class k of the data: a wrong AP, not an error, if let through).
    """
    if tta is not None and tiling is not None:
        raise ValueError("test-time augmentation and tiling do not combine; choose one")
    model = load_model(weights, image_size=image_size, **(overrides or {}))
    split = split or ("val" if detect_format(data) == "yolo" else None)
    records = load_dataset(data, images_dir=images, split=split)
    records.require_boxes("evaluate against")  # without ground truth every AP is undefined (-1)
    named = model.config.class_names
    if (list(named) if named else model.config.num_classes) != (
        list(records.class_names) if named else records.num_classes
    ):
        raise DatasetError(
            f"{data}: classes {records.class_names} do not match the model's {list(model.class_names)} ({weights})"
        )
    chosen = resolve_device(device)
    network: nn.Module = prepare_for_inference(model.to(chosen), compile=compile)
    if tiling is not None:
        network = TiledDetector(network, replace(tiling, batch_size=batch_size))
        batch_size = 1  # one large image at a time; its tiles are batched
    if tta is not None:
        network = FusedDetector([network], tta, fusion)
    autocast = functools.partial(precision_autocast, resolve_precision(precision, chosen))
    with torch.inference_mode():
        detections = gather_detections(
            network, DetectionDataset(records), chosen, batch_size, workers, collate_detection, autocast, progress
        )
    coco_eval = coco_evaluation(records, detections, max_detections)
    return Evaluation(coco_metrics(coco_eval, records.class_names), records, detections, coco_eval)


def save_results(path: str | os.PathLike[str], results: Mapping[str, Any]) -> None:
    """Write ``results`` as indented JSON, atomically."""
    atomic_write_bytes(path, json.dumps(results, indent=2).encode("utf-8"))


def format_results(results: Mapping[str, Any]) -> str:
    """The summary metrics on one line, then a per-class AP table."""
    lines = ["  ".join(f"{name} {results[name]:.3f}" for name in METRIC_NAMES[:6])]
    width = max([len("class")] + [len(row["class"]) for row in results["per_class"]])
    lines.append(f"{'class':<{width}}  {'num_gt':>6}  {'AP':>6}  {'AP50':>6}")
    for row in results["per_class"]:
        lines.append(f"{row['class']:<{width}}  {row['num_gt']:>6}  {row['AP']:>6.3f}  {row['AP50']:>6.3f}")
    if results.get("images_over_max_detections"):
        lines.append(
            f"warning: {results['images_over_max_detections']} images have more ground-truth boxes than the "
            f"{results['max_detections']} detections per image scored (up to {results['most_ground_truth']}): "
            "their AP is capped; raise --max-detections"
        )
    return "\n".join(lines)
