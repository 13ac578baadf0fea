"""``results.csv``: one row per evaluation, for a spreadsheet or ``pandas.read_csv``.

Columns: ``iteration``, ``epoch``, the mean of each loss term over the steps since the previous evaluation,
the learning rate at the evaluation, the evaluation's seconds and its single-number metrics (``AP``, ``AP50``,
...). A resumed run drops the rows after its checkpoint, as ``metrics.jsonl`` does.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from gfocal.engine.events import EvaluationEnded, Event, RunStarted, StepEnded
from gfocal.fileio import atomic_write_bytes

__all__ = ["CsvLogger"]


class CsvLogger:
    """Writes ``out_dir/results.csv``."""

    def __init__(self, out_dir: Path) -> None:
        self.path = Path(out_dir) / "results.csv"
        self.rows: list[dict[str, Any]] = []
        self.losses: dict[str, float] = {}  # sums since the last evaluation
        self.steps, self.lr = 0, 0.0

    def on_event(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.rows = [row for row in self._read() if int(row["iteration"]) <= event.iteration]
            self._write()
        elif isinstance(event, StepEnded):
            for name, value in {"loss": event.loss, **event.losses}.items():
                self.losses[name] = self.losses.get(name, 0.0) + value
            self.steps, self.lr = self.steps + 1, event.lr
        elif isinstance(event, EvaluationEnded):
            means = {name: total / max(self.steps, 1) for name, total in self.losses.items()}
            self.rows.append(
                {
                    "iteration": event.iteration,
                    "epoch": event.epoch,
                    **means,
                    "lr": self.lr,
                    "eval_s": round(event.seconds, 3),
                    **event.scalars,
                }
            )
            self.losses, self.steps = {}, 0
            self._write()

    def _read(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        with self.path.open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))

    def _write(self) -> None:
        """The whole table, atomically: a small file (a row per evaluation), never seen half-written."""
        if not self.rows:
            self.path.unlink(missing_ok=True)
            return
        columns = list(dict.fromkeys(name for row in self.rows for name in row))
        text = io.StringIO()
        writer = csv.DictWriter(text, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_bytes(self.path, text.getvalue().encode("utf-8"))
