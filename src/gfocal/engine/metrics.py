"""The metrics log (one JSON object per line) and the plots drawn from it at the end of training.

Rows have ``"kind": "train"`` (loss terms, ``loss``, ``lr``, ``iter_time``,
``data_time`` in seconds, model counters) or ``"kind": "eval"`` (COCO metrics),
plus ``epoch`` (1-based) and ``iteration`` (optimiser steps completed). The
first row, ``"kind": "setup"`` (iteration 0), records what the run trains with:
``batch_size`` (images per step, all processes), ``requested_batch_size`` (the
config's), ``train_images``, ``world_size`` and ``base_lr`` (before the schedule).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gfocal.fileio import atomic_write_bytes

__all__ = ["MetricsLog", "plot_metrics"]


class MetricsLog:
    """Appends rows to ``path``; a disabled log (non-main ranks) ignores writes."""

    def __init__(self, path: str | os.PathLike[str], enabled: bool = True) -> None:
        self.path, self.enabled = Path(path), enabled

    def write(self, row: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")

    def rows(self) -> list[dict[str, Any]]:
        """All complete rows (a line cut short by a crash is skipped)."""
        if not self.path.is_file():
            return []
        rows = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return rows

    def truncate_after(self, iteration: int) -> None:
        """Drop rows logged after ``iteration``: a resumed run repeats those steps."""
        if not self.enabled or not self.path.is_file():
            return
        kept = [row for row in self.rows() if row.get("iteration", 0) <= iteration]
        # Atomic: a crash while resuming must not lose the history of the steps kept.
        atomic_write_bytes(self.path, "".join(json.dumps(row) + "\n" for row in kept).encode("utf-8"))


def plot_metrics(rows: list[dict[str, Any]], out_dir: str | os.PathLike[str]) -> list[Path]:
    """Draw ``loss.png`` (loss terms per iteration) and ``ap.png`` (AP, AP50, AP75 per epoch); returns the files."""
    from matplotlib.figure import Figure  # no pyplot: renders with Agg, leaves the user's backend alone

    out_dir = Path(out_dir)
    written = []
    train = [r for r in rows if r.get("kind") == "train"]
    evals = [r for r in rows if r.get("kind") == "eval"]
    if train:
        terms = [k for k in train[-1] if k == "loss" or k.startswith("loss_")]
        fig = Figure(figsize=(7, 4))
        ax = fig.subplots()
        for term in terms:
            ax.plot([r["iteration"] for r in train], [r[term] for r in train], label=term)
        ax.set(xlabel="iteration", ylabel="loss", title="training loss")
        ax.legend()
        written.append(_save(fig, out_dir / "loss.png"))
    if evals:
        fig = Figure(figsize=(7, 4))
        ax = fig.subplots()
        for metric in ("AP", "AP50", "AP75"):
            ax.plot([r["epoch"] for r in evals], [r[metric] for r in evals], marker="o", label=metric)
        ax.set(xlabel="epoch", ylabel="COCO AP", title="evaluation", ylim=(0, 1))
        ax.legend()
        written.append(_save(fig, out_dir / "ap.png"))
    return written


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path
