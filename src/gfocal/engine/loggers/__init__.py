"""Trackers: subscribers (:mod:`gfocal.engine.events`) that record a run for a tool, chosen by name.

``TrainConfig.loggers`` (``gfocal train --log tensorboard,mlflow``) names the trackers of :data:`TRACKERS`;
the CSV table is always written. A tracker is one file here holding a class whose constructor takes the run
folder and checks its library is installed (:func:`gfocal.engine.loggers.extra.require_extra`), and whose
``on_event`` records what it needs; adding one is that file and one line in :data:`TRACKERS`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from gfocal.engine.build import TrainSetupError
from gfocal.engine.events import Callback
from gfocal.engine.loggers.csv import CsvLogger
from gfocal.engine.loggers.mlflow import MlflowLogger
from gfocal.engine.loggers.tensorboard import TensorBoardLogger

__all__ = ["ALWAYS_ON", "TRACKERS", "build_trackers"]

#: Tracker name -> its constructor, called with the run folder.
TRACKERS: dict[str, Callable[[Path], Callback]] = {
    "csv": CsvLogger,
    "tensorboard": TensorBoardLogger,
    "mlflow": MlflowLogger,
}

#: Written for every run, named in ``loggers`` or not: a table any spreadsheet opens costs nothing.
ALWAYS_ON = ("csv",)


def build_trackers(names: Iterable[str], out_dir: Path) -> list[Callback]:
    """The trackers named (and those always on), in that order; an unknown name or a missing library is a
    :class:`TrainSetupError` raised before the first step."""
    chosen = list(dict.fromkeys([*ALWAYS_ON, *names]))
    unknown = [name for name in chosen if name not in TRACKERS]
    if unknown:
        raise TrainSetupError(f"unknown logger {', '.join(map(repr, unknown))}; available: {', '.join(TRACKERS)}")
    return [TRACKERS[name](out_dir) for name in chosen]
