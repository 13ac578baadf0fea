"""Large images: cut into overlapping tiles, predict the tiles in batches, merge the detections.

A geometry-level package, like :mod:`gfocal.image_geometry`: it depends on torch and
torchvision only, so the data pipeline (tiled training) and the engine (tiled prediction
and evaluation) both use it. :class:`TiledDetector` wraps any detector that follows the
torchvision contract (``model(images)`` -> one dict per image) without importing it.

- :mod:`~gfocal.tiling.slicing`: the tile windows of an image, and which box edges lie on an inner tile border;
- :mod:`~gfocal.tiling.clusters`: which boxes are the same object, grouped greedily by score;
- :mod:`~gfocal.tiling.merge`: the merges: plain NMS, SAHI-style greedy NMM, and the distribution-aware merge;
- :mod:`~gfocal.tiling.detector`: :class:`TiledDetector`, the tiled prediction of whole images.
"""

from gfocal.tiling.detector import TiledDetector, TilingConfig
from gfocal.tiling.merge import MERGES, merge_distribution_aware, merge_nmm, merge_nms
from gfocal.tiling.slicing import cut_edges, tile_windows

__all__ = [
    "MERGES",
    "TiledDetector",
    "TilingConfig",
    "cut_edges",
    "merge_distribution_aware",
    "merge_nmm",
    "merge_nms",
    "tile_windows",
]
