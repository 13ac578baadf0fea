"""Which detections are the same object: pairwise matches, found in chunks, grouped greedily by score.

Shape letters:
    K  detections of one image      I, J  a chunk of rows / columns of the K x K comparison
    G  clusters (merged detections)

A merge compares every detection with every other one of its class. The K x K
comparison is built a block of rows at a time, and only its true entries are kept,
so a 10,000 x 10,000 image with tens of thousands of tile detections never holds a
K x K matrix.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["Match", "intersections", "matching_pairs", "greedy_clusters", "OUTWARD"]

# Outward direction of each edge (left, top, right, bottom): a larger signed value lies further outside the box.
OUTWARD = (-1.0, -1.0, 1.0, 1.0)

#: ``match(rows, cols)``: Tensor[I, J] bool, which detections ``rows`` (Tensor[I] indices) match ``cols`` (Tensor[J]).
Match = Callable[[Tensor, Tensor], Tensor]

_BLOCK_ENTRIES = 1 << 22  # entries of one I x J block (16 MB per float temporary)


def intersections(boxes: Tensor, other: Tensor) -> Tensor:
    """Intersection areas of all pairs: boxes (Tensor[I, 4]) x other (Tensor[J, 4]), xyxy -> Tensor[I, J]."""
    top_left = boxes[:, None, :2].maximum(other[None, :, :2])
    bottom_right = boxes[:, None, 2:].minimum(other[None, :, 2:])
    return (bottom_right - top_left).clamp_min(0).prod(-1)


def matching_pairs(num: int, labels: Tensor, match: Match) -> Tensor:
    """All pairs ``(i, j)``, ``i != j``, of detections of the same class that ``match``.

    Args:
        num: K, the number of detections.
        labels (Tensor[K] int64): class of each detection; detections of different classes never match.
        match: the matching rule, evaluated on blocks of rows against all columns.

    Returns:
        Tensor[P, 2] int64, both orders of each matching pair when ``match`` is symmetric.
    """
    columns = torch.arange(num, device=labels.device)
    rows_per_block = max(1, _BLOCK_ENTRIES // max(num, 1))
    found = [torch.zeros(0, 2, dtype=torch.int64, device=labels.device)]
    for start in range(0, num, rows_per_block):
        rows = columns[start : start + rows_per_block]  # [I]
        same = (labels[rows, None] == labels[None, :]) & (rows[:, None] != columns[None, :])  # [I, J]
        hits = (same & match(rows, columns)).nonzero()  # [P_block, 2]
        found.append(torch.stack((rows[hits[:, 0]], hits[:, 1]), dim=-1))
    return torch.cat(found)


def greedy_clusters(scores: Tensor, pairs: Tensor) -> Tensor:
    """Group detections around keepers taken in descending score, as NMS does.

    The highest-scoring detection not yet grouped starts a cluster and takes every
    ungrouped detection that matches it (not those that only match a member: chains
    of neighbours would otherwise merge a row of touching objects into one).

    Args:
        scores (Tensor[K]): detection scores.
        pairs (Tensor[P, 2]): matching pairs from :func:`matching_pairs`.

    Returns:
        Tensor[K] int64: cluster index of each detection, 0..G-1, numbered in keeper order
        (cluster 0 holds the best detection).
    """
    neighbours: list[list[int]] = [[] for _ in range(len(scores))]
    for i, j in pairs.tolist():
        neighbours[i].append(j)
    cluster = [-1] * len(scores)
    count = 0
    for keeper in scores.argsort(descending=True, stable=True).tolist():
        if cluster[keeper] >= 0:
            continue
        cluster[keeper] = count
        for other in neighbours[keeper]:
            if cluster[other] < 0:
                cluster[other] = count
        count += 1
    return torch.tensor(cluster, dtype=torch.int64, device=scores.device)
