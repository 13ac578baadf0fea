"""Why one tile merge scores above another: each merge's detections matched to the ground truth, box by box.

    python benchmarks/tiling_analysis.py --weights W [--out runs/tiling] [--split test] [--tile 416] [--json PATH]

The scenes are ``benchmarks/tiling.py``'s (written under ``--out/data`` when missing; ``--split val``
writes two more scenes, never used for training or for the reported table, on which thresholds are
chosen). Every tile is predicted once (cached under ``--out/tile_detections``), then each merge runs
on the same tile detections, and per merge:

- COCO AP of the merged detections (up to 1000 per image), as the benchmark scores them;
- an error breakdown at IoU 0.5, COCO's greedy matching in descending score per class, of the
  detections scoring at least ``--min-score``: ``true`` (matches a ground-truth box not yet matched),
  ``duplicate`` (its best ground-truth box of its class, IoU >= 0.5, is already matched by a better
  detection: a second detection of one object), ``poor_box`` (best IoU with its class in [0.1, 0.5)),
  ``wrong_class`` (IoU >= 0.5 only with another class), ``background``; and ``missed`` objects;
- per object, the IoU of the best detection of its class (localisation): its mean over the objects
  found (best IoU >= 0.5) and the share of those at IoU >= 0.75;

each split by where the objects (and the detections' own boxes) lie (:func:`place`): crossed by an
inner tile border, seen whole by two or more tiles, or seen by one tile only. Before merging, the
pairs of tile detections that NMS's rule (IoU > 0.5) and the edge rule of the distribution-aware
merge call one object are compared (:func:`rule_agreement`).

``--tile 128`` (network input 128 px too, so objects keep their trained scale) makes about half the
objects (14-40 px) larger than the overlap (26 px): cut in every tile that sees them.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from common import add_json_argument, report
from tiling import MAX_DETECTIONS, OVERLAP, TILE, write_split
from torch import Tensor
from torchvision.ops import box_iou

from gfocal.data import load_dataset
from gfocal.data.image_io import decode_image
from gfocal.engine.evaluate import evaluate_detections
from gfocal.image_geometry import clip_boxes
from gfocal.models import load_model
from gfocal.models.precision import autocast, prepare_for_inference, resolve_precision
from gfocal.tiling import TiledDetector, TilingConfig
from gfocal.tiling.merge import merge_distribution_aware, merge_nms, same_object
from gfocal.tiling.slicing import tile_windows

SPLITS = {"test": 2, "val": 2}  # scenes per split; "test" is the benchmark's
MIN_IOU_POOR = 0.1
GOOD_IOU = 0.75

Detections = dict[str, Tensor]


PLACES = ("cut", "overlap", "single")


def place(boxes: Tensor, image_size: tuple[int, int], tiling: TilingConfig) -> Tensor:
    """Tensor[M] int64 index into :data:`PLACES` for boxes (Tensor[M, 4] xyxy): 0 "cut" (an inner tile
    border runs through the box: some tile sees it cut), 1 "overlap" (seen whole by two or more tiles,
    cut by none), 2 "single" (seen by one tile only)."""
    height, width = image_size
    windows = tile_windows(height, width, tiling.tile, tiling.overlap).to(boxes.dtype)  # [T, 4]
    xs = torch.cat((windows[:, 0][windows[:, 0] > 0], windows[:, 2][windows[:, 2] < width])).unique()
    ys = torch.cat((windows[:, 1][windows[:, 1] > 0], windows[:, 3][windows[:, 3] < height])).unique()
    crossed_x = ((boxes[:, None, 0] < xs) & (xs < boxes[:, None, 2])).any(-1)
    crossed_y = ((boxes[:, None, 1] < ys) & (ys < boxes[:, None, 3])).any(-1)
    inside = ((boxes[:, None, :2] >= windows[None, :, :2]) & (boxes[:, None, 2:] <= windows[None, :, 2:])).all(-1)
    seen_whole = inside.sum(-1)  # [M]
    return torch.where(crossed_x | crossed_y, 0, torch.where(seen_whole >= 2, 1, 2))


def match_to_truth(detections: Detections, truth_boxes: Tensor, truth_labels: Tensor) -> tuple[list[str], Tensor]:
    """COCO-style greedy matching at IoU 0.5; a kind for each detection (in descending score) and,
    per ground-truth box, the best IoU of a detection of its class (0 when there is none).

    Returns:
        (kinds, best_iou): K strings (see the module docstring), Tensor[M].
    """
    order = detections["scores"].argsort(descending=True)
    boxes, labels = detections["boxes"][order].float(), detections["labels"][order]
    iou = (
        box_iou(boxes, truth_boxes.float())
        if len(boxes) and len(truth_boxes)
        else boxes.new_zeros(len(boxes), len(truth_boxes))
    )
    same = labels[:, None] == truth_labels[None, :]  # [K, M]
    iou_same = torch.where(same, iou, 0.0)
    taken = torch.zeros(len(truth_boxes), dtype=torch.bool)
    kinds = []
    for row in range(len(boxes)):
        free = torch.where(taken, -1.0, iou_same[row])
        if len(free) and free.max() >= 0.5:
            taken[free.argmax()] = True
            kinds.append("true")
        elif len(free) and iou_same[row].max() >= 0.5:
            kinds.append("duplicate")
        elif len(free) and iou_same[row].max() >= MIN_IOU_POOR:
            kinds.append("poor_box")
        elif len(free) and iou[row].max() >= 0.5:
            kinds.append("wrong_class")
        else:
            kinds.append("background")
    best = iou_same.amax(0) if len(boxes) else truth_boxes.new_zeros(len(truth_boxes))
    return kinds, best


def breakdown(
    merged: list[Detections], truths: list[tuple[Tensor, Tensor]], sizes, tiling: TilingConfig, min_score: float
) -> dict:
    """Error counts and localisation of ``merged`` (one dict per scene), per :data:`PLACES` of the objects."""
    counts = {where: {} for where in PLACES}
    best_iou, places = [], []
    for detections, (truth_boxes, truth_labels), size in zip(merged, truths, sizes):
        kept = detections["scores"] >= min_score
        detections = {key: value[kept] for key, value in detections.items()}
        kinds, best = match_to_truth(detections, truth_boxes, truth_labels)
        # A detection counts where its own box lies (a background box has no object to go by).
        boxes = detections["boxes"][detections["scores"].argsort(descending=True)]
        for kind, index in zip(kinds, place(boxes, size, tiling).tolist()):
            counts[PLACES[index]][kind] = counts[PLACES[index]].get(kind, 0) + 1
        best_iou.append(best)
        places.append(place(truth_boxes, size, tiling))
    best_iou, places = torch.cat(best_iou), torch.cat(places)
    objects = {}
    for index, name in enumerate(PLACES):
        ious = best_iou[places == index]
        found = ious[ious >= 0.5]
        objects[name] = {
            "objects": len(ious),
            "missed": len(ious) - len(found),
            "mean_best_iou_found": round(float(found.mean()), 4),
            "share_iou_075_of_found": round(float((found >= GOOD_IOU).float().mean()), 4),
            "detections": dict(sorted(counts[name].items())),
        }
    return objects


def rule_agreement(scenes: list[tuple[Detections, Tensor]], min_score: float, tolerance: float = 0.25) -> dict:
    """Which pairs of tile detections (same class, both scoring at least ``min_score``) the edge rule of
    :func:`~gfocal.tiling.merge.same_object` joins, against NMS's rule (IoU > 0.5); for the pairs NMS joins
    and the edge rule does not, the largest disagreement of an edge as a share of the box extent."""
    nms_pairs = edge_pairs = edge_only = 0
    largest = []
    for detections, cut in scenes:
        kept = detections["scores"] >= min_score
        boxes, labels, cut = detections["boxes"][kept], detections["labels"][kept], cut[kept]
        everything = torch.arange(len(boxes))
        upper = torch.ones(len(boxes), len(boxes), dtype=torch.bool).triu(1) & (labels[:, None] == labels[None, :])
        by_iou = upper & (box_iou(boxes, boxes) > 0.5)  # [K, K]
        by_edges = upper & same_object(boxes, cut, tolerance)(everything, everything)
        nms_pairs, edge_pairs = nms_pairs + int(by_iou.sum()), edge_pairs + int((by_iou & by_edges).sum())
        edge_only += int((by_edges & ~by_iou).sum())
        i, j = (by_iou & ~by_edges).nonzero().T
        extent = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)  # [K, 4]
        largest.append(((boxes[i] - boxes[j]).abs() / extent[i].maximum(extent[j])).amax(-1))
    largest = torch.cat(largest)
    return {
        "pairs_iou_over_0.5": nms_pairs,
        "of_which_the_edge_rule_joins": edge_pairs,
        "pairs_only_the_edge_rule_joins": edge_only,
        "largest_edge_gap_of_the_rest_quantiles_10_50_90": [
            round(q, 3) for q in largest.quantile(torch.tensor([0.1, 0.5, 0.9])).tolist()
        ]
        if len(largest)
        else None,  # the edge rule joins every pair NMS joins
    }


def tile_detections(
    weights: Path, records, tiling: TilingConfig, cache: Path, precision: str
) -> list[tuple[Detections, Tensor]]:
    """Every scene's tile detections before merging, with their cut edges (computed once, then cached). The
    network input is the tile's size: objects keep the scale they were trained at whatever the tile."""
    if cache.exists():
        return torch.load(cache, weights_only=True)  # tensors, dicts and tuples only
    tiled = TiledDetector(prepare_for_inference(load_model(weights, image_size=tiling.tile)), tiling)
    chosen = resolve_precision(precision, torch.device("cpu"))
    scenes = []
    with torch.inference_mode(), autocast(chosen):
        for image in records.images:
            detections, cut = tiled.tile_detections(decode_image(image.path), with_distributions=True)
            scenes.append(
                ({key: value.float() if value.is_floating_point() else value for key, value in detections.items()}, cut)
            )
    cache.parent.mkdir(parents=True, exist_ok=True)
    torch.save(scenes, cache)
    return scenes


def clip(detections: Detections, image_size: tuple[int, int]) -> Detections:
    """The merged detections with boxes clipped to the image, as :class:`TiledDetector` returns them."""
    return {**detections, "boxes": clip_boxes(detections["boxes"], image_size)}


def merges() -> dict[str, Callable[[Detections, Tensor], Detections]]:
    """The merges compared, by name; each takes ``(detections, cut)``. NMS, and the distribution-aware
    merge as first built (edge tolerance 0.25, edges a weighted mean), with NMS's IoU rule added
    (``iou``: boxes overlapping by IoU > 0.5 are one object whatever their edges), looser tolerances,
    and each edge taken from the most certain member (``best``) or from the best-scoring one whose
    edge is not cut (``best_score``: the spread left out, by a floor on it that all edges are under).
    ``dist_tol0.5_iou_best`` was the merge's default until #28 (chosen on a real photograph: tiling_real.py)."""
    first = partial(merge_distribution_aware, tolerance=0.25, iou_threshold=None, edges="mean")
    return {
        "nms": lambda detections, cut: merge_nms(detections),
        "dist_tol0.25": first,
        "dist_tol0.25_iou": partial(first, iou_threshold=0.5),
        "dist_tol0.25_iou_best": partial(first, iou_threshold=0.5, edges="most_certain"),
        "dist_tol0.25_iou_best_score": partial(first, iou_threshold=0.5, edges="most_certain", min_std=1e6),
        "dist_tol0.35_iou_best": partial(first, tolerance=0.35, iou_threshold=0.5, edges="most_certain"),
        "dist_tol0.5_iou_best": partial(first, tolerance=0.5, iou_threshold=0.5, edges="most_certain"),
    }


def score_merges(
    records,
    scenes: list[tuple[Detections, Tensor]],
    merges: dict[str, Callable[[Detections, Tensor], Detections]],
    tiling: TilingConfig,
    max_detections: int,
    min_score: float,
    metrics: tuple[str, ...] = ("AP", "AP50", "AP75"),
) -> tuple[dict, list[tuple[Tensor, Tensor]]]:
    """Each merge run on every scene's tile detections, scored: COCO ``metrics``, detections, the breakdown by
    place (:func:`breakdown`); and the scenes' ground truth, (boxes [M, 4], labels [M]) per scene."""
    truths = [
        (torch.tensor([a.box for a in image.annotations]), torch.tensor([a.label for a in image.annotations]))
        for image in records.images
    ]
    sizes = [(image.height, image.width) for image in records.images]
    results = {}
    for name, merge in merges.items():
        merged = [clip(merge(detections, cut), size) for (detections, cut), size in zip(scenes, sizes)]
        coco = evaluate_detections(records, dict(enumerate(merged)), max_detections=max_detections)
        results[name] = {
            **{metric: round(coco[metric], 4) for metric in metrics},
            "detections": sum(len(d["scores"]) for d in merged),
            "by_place": breakdown(merged, truths, sizes, tiling, min_score),
        }
    return results, truths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--out", default="runs/tiling", help="the benchmark's folder (its data/ is reused)")
    parser.add_argument("--split", default="test", choices=tuple(SPLITS))
    parser.add_argument("--tile", type=int, default=TILE, help="tile side, pixels (also the network input size)")
    parser.add_argument("--overlap", type=float, default=OVERLAP)
    parser.add_argument("--min-score", type=float, default=0.3, help="detections counted in the breakdown")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--seed", type=int, default=0, help="the benchmark's data seed")
    add_json_argument(parser, "tiling_analysis")
    args = parser.parse_args()
    out, weights = Path(args.out), Path(args.weights)
    tiling = TilingConfig(args.tile, args.overlap, "dist")
    json_path = out / "data" / f"{args.split}.json"
    if not json_path.exists():
        write_split(out / "data", args.split, SPLITS[args.split], args.seed)
    records = load_dataset(json_path)
    cache = out / "tile_detections" / f"{weights.parent.name}_{args.split}_{args.tile}_{args.overlap}.pt"
    scenes = tile_detections(weights, records, tiling, cache, args.precision)
    results, truths = score_merges(records, scenes, merges(), tiling, MAX_DETECTIONS, args.min_score)
    report(
        {
            **{"weights": str(weights), "split": args.split, "tile": args.tile, "overlap": args.overlap},
            **{"objects": sum(len(boxes) for boxes, _ in truths), "min_score": args.min_score},
            "rule_agreement": rule_agreement(scenes, args.min_score),
            "results": results,
        },
        args.json,
    )


if __name__ == "__main__":
    main()
