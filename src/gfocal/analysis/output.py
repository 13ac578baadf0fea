"""The analysis output folder: refuse to overwrite, safe file names, atomic CSV/JSON writes.

Names that come from a dataset (file names, annotation ids) may hold ``..``,
slashes, drive letters or control characters; :func:`safe_name` turns them
into one plain file-name component and :func:`output_path` checks that the
final path stays inside the output folder, so no dataset can make the
analysis write elsewhere.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from gfocal.fileio import atomic_write_bytes, atomic_write_json

__all__ = ["OutputExistsError", "prepare_output_dir", "safe_name", "output_path", "write_csv", "write_json"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class OutputExistsError(FileExistsError):
    """The output folder already holds files and ``overwrite`` was not given."""


def prepare_output_dir(out: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Create ``out``; an existing non-empty folder is an error unless ``overwrite``.

    With ``overwrite`` the folder is reused: files of the same names are replaced
    (atomically), nothing else is deleted.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputExistsError(f"{out} already exists and is not empty; pass --overwrite to replace its files")
    out.mkdir(parents=True, exist_ok=True)
    return out


def safe_name(text: object, max_length: int = 60) -> str:
    """One file-name component from any text: ``[A-Za-z0-9._-]`` only, no leading dot, bounded length.

    A short hash of the original text is appended whenever characters were
    replaced or cut, so that distinct names stay distinct.
    """
    raw = str(text)
    cleaned = _UNSAFE.sub("_", raw).lstrip(".") or "_"
    if cleaned != raw or len(cleaned) > max_length:
        digest = hashlib.sha1(raw.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        cleaned = f"{cleaned[:max_length]}-{digest}"
    return cleaned


def output_path(out: Path, *parts: str) -> Path:
    """``out / parts...`` after checking that it resolves inside ``out`` (parts must be :func:`safe_name` results)."""
    path = out.joinpath(*parts)
    root = out.resolve()
    if root not in path.resolve().parents:
        raise ValueError(f"refusing to write {path}: outside the output folder {out}")
    return path


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
