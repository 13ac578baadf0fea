"""The tile merges on a real photograph: one model, one whole photograph predicted on tiles, each merge scored.

    python benchmarks/tiling_real.py --weights W --split val|test [--data /work/data/bench] [--json PATH]

The photographs are ``benchmarks/real_data.py``'s ``trees-photo`` (written under ``--data`` when missing):
``val`` is the ``trees-val`` held-out region of the large tree photograph (499 x 1650 px, 122 crowns; score
it with a model trained on ``trees-val``, which never saw it: merge settings are chosen here), ``test`` its
test band (2299 x 822 px, 197 crowns; a model trained on ``trees``; reported, never chosen on).

Every tile (``--tile`` px, the model's input size, ``--overlap`` shared) is predicted once (cached under
``--out``), then each merge of :func:`merges` runs on the same tile detections and is scored on the whole
photograph as ``tiling_analysis.py`` scores its scenes: COCO AP, AP50, AP75 with up to ``--max-detections``
per image, and the detections scoring at least ``--min-score`` matched to the crowns box by box (true,
duplicate, poor box, background; missed crowns; by where the crowns lie against the tile borders). Also:

- ``gfocal_eval``: the photograph through ``TiledDetector`` (``gfocal eval --tile``) with ``--merge nms`` and
  the default merge, which the cached tile detections must reproduce;
- ``tiles``: the same model on the photograph's tiles, each scored on its own boxes (``{split}_tiles.json``:
  for ``test`` the 12 non-overlapping test tiles, boxes cut at the tile borders; for ``val`` the 12
  overlapping validation tiles): what the whole photograph's AP is compared with.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from functools import partial
from pathlib import Path

from common import add_json_argument, report
from real_data import PHOTO, write_photographs, write_trees
from tiling_analysis import rule_agreement, score_merges, tile_detections
from torch import Tensor

from gfocal.data import load_dataset
from gfocal.engine.evaluate import evaluate_weights
from gfocal.tiling import TilingConfig
from gfocal.tiling.merge import merge_distribution_aware, merge_nms

MAX_DETECTIONS = 1000  # a whole photograph holds 100-200 crowns; its tiles' detections are many more
METRICS = ("AP", "AP50", "AP75", "AR100")

Detections = dict[str, Tensor]


def merges() -> dict[str, Callable[[Detections, Tensor], Detections]]:
    """The merges compared, by name; each takes ``(detections, cut)``. ``nms`` and ``dist`` are ``--merge
    nms`` and the distribution-aware merge with its defaults; the others name every setting they differ in:
    the tolerance of the edge rule (``tol0``: uncut edges must coincide, so in effect only NMS's IoU rule
    joins) and the edges: ``mean``, the members' edges weighted by certainty; ``most_certain``, the edge of
    the most certain member (the default before #28); ``best_score``, the best-scoring member's uncut edge."""
    dist = partial(merge_distribution_aware, iou_threshold=0.5)
    return {
        "nms": lambda detections, cut: merge_nms(detections),
        "dist": merge_distribution_aware,
        "dist_tol0.5_most_certain": partial(dist, tolerance=0.5, edges="most_certain"),
        "dist_tol0.5_mean": partial(dist, tolerance=0.5, edges="mean"),
        "dist_tol0.25_most_certain": partial(dist, tolerance=0.25, edges="most_certain"),
        "dist_tol0.25_mean": partial(dist, tolerance=0.25, edges="mean"),
        "dist_tol0_most_certain": partial(dist, tolerance=0.0, edges="most_certain"),
        "dist_tol0_mean": partial(dist, tolerance=0.0, edges="mean"),
        "dist_tol0_best_score": partial(dist, tolerance=0.0, edges="most_certain", min_std=1e6),
    }


def photographs(root: Path) -> Path:
    """``root/trees-photo``, written (with the tree datasets it needs) when missing."""
    if not (root / PHOTO / "test_tiles.json").is_file():
        written = write_trees(root)
        write_photographs(root, {"test": written["trees"]["test"], "val": written["trees-val"]["val"]})
    return root / PHOTO


def scored(results: dict) -> dict:
    """The COCO metrics the report keeps, rounded."""
    return {metric: round(results[metric], 4) for metric in METRICS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True, type=Path)
    parser.add_argument("--split", required=True, choices=("val", "test"))
    parser.add_argument("--data", type=Path, default=Path("runs/small_data/data"), help="real_data.py's root")
    parser.add_argument("--out", type=Path, default=Path("runs/tiling_real"), help="tile detections are cached here")
    parser.add_argument("--tile", type=int, default=416, help="tile side, pixels (also the network input size)")
    parser.add_argument("--overlap", type=float, default=TilingConfig.overlap)
    parser.add_argument("--max-detections", type=int, default=MAX_DETECTIONS)
    parser.add_argument("--min-score", type=float, default=0.3, help="detections counted in the breakdown")
    parser.add_argument("--precision", default="auto")
    add_json_argument(parser, "tiling_real")
    args = parser.parse_args()
    folder = photographs(args.data)
    photo, tiles = folder / f"{args.split}.json", folder / f"{args.split}_tiles.json"
    records = load_dataset(photo)
    tiling = TilingConfig(args.tile, args.overlap, "dist")
    cache = args.out / f"{args.weights.parent.name}_{args.split}_{args.tile}_{args.overlap}.pt"
    scenes = tile_detections(args.weights, records, tiling, cache, args.precision)
    results, truths = score_merges(records, scenes, merges(), tiling, args.max_detections, args.min_score, METRICS)
    evaluate = partial(evaluate_weights, args.weights, workers=0, precision=args.precision)
    report(
        {
            **{"weights": str(args.weights), "split": args.split, "photograph": str(photo), "tiles": str(tiles)},
            **{"tile": args.tile, "overlap": args.overlap, "max_detections": args.max_detections},
            **{"objects": sum(len(boxes) for boxes, _ in truths), "min_score": args.min_score},
            "rule_agreement": rule_agreement(scenes, args.min_score),
            "results": results,
            "gfocal_eval": {
                merge: scored(
                    evaluate(
                        photo, tiling=TilingConfig(args.tile, args.overlap, merge), max_detections=args.max_detections
                    )
                )
                for merge in ("nms", TilingConfig.merge)
            },  # fmt: skip
            "tiles": {
                **scored(evaluate(tiles, max_detections=args.max_detections)),
                "images": len(json.loads(tiles.read_text())["images"]),
            },
        },
        args.json,
    )


if __name__ == "__main__":
    main()
