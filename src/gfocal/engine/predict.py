"""Running a trained detector over image files and writing what it found.

``predict_files`` yields detections per image; ``write_predictions`` writes a
COCO results list (``results.json``, for pycocotools' ``loadRes``), a COCO-style
``predictions.json`` (images, categories, and annotations with scores) and, on
request, the images with their boxes drawn. Nothing is written outside the
output folder, and an existing non-empty folder is only reused with ``overwrite``.
"""

from __future__ import annotations

import functools
import glob
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm import tqdm

from gfocal.data import ImageFiles
from gfocal.engine.distributed import resolve_device
from gfocal.engine.inference_loop import LoadedImage, run_over_images
from gfocal.fileio import atomic_write, atomic_write_json
from gfocal.models import GFLDetector
from gfocal.models.fusion import FusedDetector, FusionMethod, TestTimeAugmentation
from gfocal.models.precision import PrecisionName, autocast, prepare_for_inference, resolve_precision
from gfocal.tiling import TiledDetector, TilingConfig
from gfocal.visualize import draw_detections

__all__ = ["IMAGE_SUFFIXES", "find_images", "Prediction", "predict_files", "write_predictions"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def find_images(source: str | Path) -> list[Path]:
    """Image files named by ``source``: one file, a folder (searched recursively), or a glob pattern."""
    path = Path(source)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    else:
        files = sorted(
            Path(p) for p in glob.glob(str(source), recursive=True) if Path(p).suffix.lower() in IMAGE_SUFFIXES
        )
    if not files:
        raise FileNotFoundError(f"no images found at {source} (looked for {', '.join(IMAGE_SUFFIXES)})")
    return files


@dataclass
class Prediction:
    """Detections of one image, in its original pixels (boxes xyxy), and ``image`` (uint8 Tensor[3, H, W] RGB),
    the image as decoded for the network, so that drawing it (:func:`write_predictions`) does not decode
    the file again. Let each go once written: a list of them holds every decoded image."""

    path: Path
    width: int
    height: int
    detections: dict[str, Tensor]
    image: Tensor


def predict_files(
    model: GFLDetector,
    paths: Sequence[Path],
    batch_size: int = 4,
    workers: int = 0,
    precision: PrecisionName = "auto",
    device: str | torch.device | None = None,
    return_distributions: bool = False,
    progress: bool = True,
    compile: bool = False,
    tiling: TilingConfig | None = None,
    tta: TestTimeAugmentation | None = None,
    fusion: FusionMethod = "distribution",
) -> Iterator[Prediction]:
    """Run the model over image files (:func:`~gfocal.engine.inference_loop.run_over_images`), each decoded once.

    The model is prepared for inference in place (eval mode, BatchNorm folded,
    channels_last): use a fresh model if it is to be trained further. Files that
    cannot be decoded (corrupt, not an image, over ``PIL.Image.MAX_IMAGE_PIXELS``)
    are skipped with a :class:`~gfocal.data.DatasetWarning` naming each; they
    yield no :class:`Prediction`. ``workers``: decoding processes.
    ``compile``: see :func:`gfocal.models.precision.compile_network`.
    ``tiling``: predict each image on overlapping tiles (:class:`~gfocal.tiling.TiledDetector`), one image
    at a time with ``batch_size`` tiles per forward pass; the progress bar counts tiles.
    ``tta``: predict every view of each image and merge the views' detections by ``fusion``
    (:class:`~gfocal.models.fusion.FusedDetector`); not with ``tiling``.
    """
    if tta is not None and tiling is not None:
        raise ValueError("test-time augmentation and tiling do not combine; choose one")
    device = resolve_device(device)
    network: nn.Module = prepare_for_inference(model.to(device), compile=compile)
    if tta is not None:
        network = FusedDetector([network], tta, fusion)
    chosen = resolve_precision(precision, device)
    tile_bar = tqdm(desc="predict", unit="tile", total=0, disable=not progress or tiling is None)
    if tiling is not None:
        network = TiledDetector(network, replace(tiling, batch_size=batch_size), progress=tile_bar.update)
        batch_size = 1  # the tiles of one large image are batched instead

    def detect(images: list[Tensor], _: list[LoadedImage]) -> list[dict[str, Tensor]]:
        if isinstance(network, TiledDetector):
            tile_bar.total += sum(network.count_tiles(*image.shape[-2:]) for image in images)
        with torch.inference_mode(), autocast(chosen):
            outputs = network(images, return_distributions=return_distributions)
        return [{k: v.cpu() for k, v in detections.items()} for detections in outputs]

    loop = run_over_images(
        ImageFiles(paths), detect, device, batch_size, workers, progress=progress and tiling is None, desc="predict"
    )
    with tile_bar:
        for item, detections in loop:
            height, width = item.original_size
            yield Prediction(paths[item.index], width, height, detections, item.image)


def _save_jpeg(image: Any, path: Path) -> None:
    image.save(path, format="JPEG", quality=90)


def _drawn_image_name(path: Path, taken: set[str]) -> str:
    """A file name for a drawn image: the source's stem, sanitised, made unique; never a path."""
    stem = re.sub(r"[^\w.-]", "_", path.stem)[:100] or "image"
    name, counter = f"{stem}.jpg", 1
    while name in taken:
        name, counter = f"{stem}_{counter}.jpg", counter + 1
    taken.add(name)
    return name


def write_predictions(
    predictions: Iterator[Prediction],
    out_dir: Path,
    class_names: Sequence[str],
    draw: bool = True,
    draw_threshold: float = 0.3,
    box_fields: Callable[[dict[str, Tensor]], list[dict[str, Any]]] | None = None,
) -> dict[str, int]:
    """Write results.json, predictions.json and (if ``draw``) drawn images; returns counts.

    The JSON files hold every detection; drawn images only those scoring at least ``draw_threshold``.
    ``box_fields(detections)`` may add per-box fields to predictions.json (one dict per box),
    e.g. the edge-distribution statistics of :mod:`gfocal.analysis.distributions`.
    """
    images, annotations, results = [], [], []
    drawn: set[str] = set()
    for image_id, prediction in enumerate(predictions, start=1):
        detections = prediction.detections
        images.append(
            {"id": image_id, "file_name": str(prediction.path), "width": prediction.width, "height": prediction.height}
        )
        for box, score, label, extra in zip(
            detections["boxes"].tolist(),
            detections["scores"].tolist(),
            detections["labels"].tolist(),
            box_fields(detections) if box_fields else ({} for _ in detections["scores"]),
        ):
            x1, y1, x2, y2 = box
            entry = {"image_id": image_id, "category_id": label + 1, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": score}
            results.append(entry)
            annotations.append(
                {"id": len(annotations) + 1, "area": (x2 - x1) * (y2 - y1), "iscrowd": 0, **entry, **extra}
            )
        if draw:
            name = _drawn_image_name(prediction.path, drawn)
            shown = detections["scores"] >= draw_threshold
            canvas = draw_detections(
                prediction.image,
                detections["boxes"][shown],
                detections["labels"][shown],
                detections["scores"][shown],
                class_names,
            )
            atomic_write(out_dir / "images" / name, functools.partial(_save_jpeg, canvas))
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(class_names)]
    atomic_write_json(out_dir / "results.json", results)
    atomic_write_json(
        out_dir / "predictions.json", {"images": images, "categories": categories, "annotations": annotations}
    )
    return {"images": len(images), "detections": len(results)}
