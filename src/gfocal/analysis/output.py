"""The analysis tables: atomic CSV and JSON writes (the folder and its safe names: :mod:`gfocal.fileio`)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from gfocal.fileio import atomic_write_bytes, atomic_write_json

__all__ = ["write_csv", "write_json"]


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]], columns: Iterable[str] | None = None) -> Path:
    """Write rows (dicts) as UTF-8 CSV with a header, atomically; None becomes an empty cell."""
    columns = list(columns if columns is not None else (rows[0].keys() if rows else ()))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_bytes(path, buffer.getvalue().encode("utf-8"))


def write_json(path: Path, obj: Any) -> Path:
    """Write JSON atomically (NaN must already be None)."""
    return atomic_write_json(path, obj)
