"""Tiled prediction of whole images: :class:`TiledDetector` wraps a detector and keeps its contract.

Shape letters:
    T  tiles of one image      K  detections from all tiles      G  merged detections

Each image is cut into overlapping tiles (:func:`~gfocal.tiling.slicing.tile_windows`), the tiles
run through the wrapped detector ``batch_size`` at a time (views into the image, no copies), their
detections are moved to image pixels and merged (:data:`~gfocal.tiling.merge.MERGES`). Only one
batch of tiles is ever in the network, so memory grows with the tile and batch size, not with the
image: a 10,000 x 10,000 image never has whole-image feature maps. Because ``TiledDetector(model)``
answers ``model(images)`` like the detector itself (one ``{"boxes", "scores", "labels"}`` dict per
image, in its pixels), evaluation and prediction code runs unchanged on tiles.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from gfocal.image_geometry import clip_boxes
from gfocal.tiling.merge import MERGES
from gfocal.tiling.slicing import cut_edges, tile_windows

__all__ = ["TilingConfig", "TiledDetector"]

_DISTRIBUTION_KEYS = ("box_distributions", "edge_std", "bin_size")


@dataclass(frozen=True)
class TilingConfig:
    """How images are tiled and the tiles' detections merged.

    Attributes:
        tile: tile side in image pixels (each tile is resized by the detector like any image;
            a tile of the detector's input size is left as it is).
        overlap: fraction of the tile shared by neighbouring tiles, in [0, 1): an object smaller
            than ``tile * overlap`` is seen whole by at least one tile.
        merge: "dist" (distribution-aware, needs a distribution head), "nms" or "nmm" (SAHI's greedy merge).
        batch_size: tiles per forward pass.
        border_margin: pixels within which a box edge counts as on an inner tile border (plus the
            edge's standard deviation, see :func:`~gfocal.tiling.slicing.cut_edges`).
        max_detections: detections kept per image after merging, best first; None keeps all.
    """

    tile: int
    overlap: float = 0.2
    merge: str = "dist"
    batch_size: int = 8
    border_margin: float = 2.0
    max_detections: int | None = None

    def __post_init__(self) -> None:
        if self.tile < 32:
            raise ValueError(f"tile must be at least 32 pixels, got {self.tile}")
        if not 0 <= self.overlap < 1:
            raise ValueError(f"overlap must be a fraction in [0, 1), got {self.overlap}")
        if self.merge not in MERGES:
            raise ValueError(f"unknown merge {self.merge!r}; choose one of {', '.join(MERGES)}")
        if self.batch_size < 1 or (self.max_detections is not None and self.max_detections < 1):
            raise ValueError(f"batch_size ({self.batch_size}) and max_detections ({self.max_detections}) must be >= 1")


class TiledDetector(nn.Module):
    """``detector`` applied to overlapping tiles of each image, the detections merged.

    Args:
        detector: in eval mode, ``detector(images, return_distributions=...)`` returns one detection dict
            per image in its pixels (a :class:`~gfocal.models.GFLDetector`).
        config: the tiling.
        progress: called with the number of tiles of each batch once it is done (e.g. ``tqdm.update``).
    """

    def __init__(self, detector: nn.Module, config: TilingConfig, progress: Callable[[int], object] | None = None):
        super().__init__()
        self.detector, self.config, self.progress = detector, config, progress
        self.train(detector.training)  # a wrapper of a model in eval mode is ready to predict

    def count_tiles(self, height: int, width: int) -> int:
        """How many tiles an image of ``height x width`` is cut into."""
        return len(tile_windows(height, width, self.config.tile, self.config.overlap))

    def forward(self, images: list[Tensor], return_distributions: bool = False) -> list[dict[str, Tensor]]:
        """Detections of each image (Tensor[3, H, W], uint8 or float in [0, 1]), in its pixels, merged over tiles.

        Returns:
            One dict per image as the detector's, ``G`` detections sorted by score.
        """
        if self.training:
            raise RuntimeError("TiledDetector predicts; train the detector itself (on tiles: gfocal train --tile)")
        return [self._predict_image(image, return_distributions) for image in images]

    def tile_detections(self, image: Tensor, with_distributions: bool) -> tuple[dict[str, Tensor], Tensor]:
        """The detections of every tile of ``image`` (Tensor[3, H, W]) in its pixels, before merging.

        Returns:
            ``({"boxes" [K, 4], "scores" [K], "labels" [K], ...}, cut)``: K detections of all tiles
            (with the per-edge distribution fields when ``with_distributions``), and ``cut``
            (Tensor[K, 4] bool), the edges on an inner border of their tile
            (:func:`~gfocal.tiling.slicing.cut_edges`).
        """
        height, width = image.shape[-2:]
        windows = tile_windows(height, width, self.config.tile, self.config.overlap)  # [T, 4]
        parts, sources = [], []
        for start in range(0, len(windows), self.config.batch_size):
            batch = windows[start : start + self.config.batch_size].tolist()
            tiles = [image[:, y0:y1, x0:x1] for x0, y0, x1, y1 in batch]
            outputs = self.detector(tiles, return_distributions=with_distributions)
            for index, output in enumerate(outputs, start):
                parts.append(_to_image_pixels(output, windows[index]))
                sources.append(windows[index].expand(len(output["scores"]), 4))
            if self.progress is not None:
                self.progress(len(batch))
        detections = {key: torch.cat([part[key] for part in parts]) for key in parts[0]}  # K detections
        window_of = torch.cat(sources).to(detections["boxes"].device)  # [K, 4]
        edge_std = detections.get("edge_std")
        cut = cut_edges(detections["boxes"], window_of, (height, width), self.config.border_margin, edge_std)
        return detections, cut

    def _predict_image(self, image: Tensor, return_distributions: bool) -> dict[str, Tensor]:
        # The distribution-aware merge weighs edges by their spread: it needs the distributions.
        with_distributions = return_distributions or self.config.merge == "dist"
        detections, cut = self.tile_detections(image, with_distributions)
        merged = MERGES[self.config.merge](detections, cut)
        merged["boxes"] = clip_boxes(
            merged["boxes"], tuple(image.shape[-2:])
        )  # a weighted mean may round past the edge
        if not return_distributions:
            merged = {key: value for key, value in merged.items() if key not in _DISTRIBUTION_KEYS}
        return {key: value[: self.config.max_detections] for key, value in merged.items()}


def _to_image_pixels(detections: dict[str, Tensor], window: Tensor) -> dict[str, Tensor]:
    """A tile's detections with boxes moved from the tile's pixels to the image's (a new dict)."""
    x0, y0 = window[:2].tolist()
    boxes = detections["boxes"] + detections["boxes"].new_tensor([x0, y0, x0, y0])
    return {**detections, "boxes": boxes}
