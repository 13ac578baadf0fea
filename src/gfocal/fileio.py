"""Writing files safely, used by every layer.

Atomic writes: a temporary file in the target folder, fsync, rename. A reader never sees a
half-written file, and an interrupted write (a crash, a SIGKILL, a full disk) leaves the previous
version, or nothing, in place.

Output folders: :func:`prepare_output_dir` never reuses a non-empty folder silently; names that
come from a dataset (file names, annotation ids) may hold ``..``, slashes, drive letters or
control characters, so :func:`safe_name` turns them into one plain file-name component and
:func:`output_path` checks that the final path stays inside the folder: no dataset can make a
command write elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_json",
    "OutputExistsError",
    "prepare_output_dir",
    "safe_name",
    "output_path",
]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")

# mkstemp makes files private (0600); finished files get the mode a plain open() would give.
_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], None]) -> Path:
    """Call ``write(temporary_path)``, then move the finished file over ``path``; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(temporary)
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o666 & ~_UMASK)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically, creating parent folders."""
    return atomic_write(path, lambda temporary: Path(temporary).write_bytes(data))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Serialise ``obj`` as compact UTF-8 JSON and write it atomically."""
    return atomic_write_bytes(path, json.dumps(obj, separators=(",", ":")).encode("utf-8"))


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
        raise OutputExistsError(
            f"{out} already exists and is not empty; choose another folder or pass --overwrite to replace its files"
        )
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
