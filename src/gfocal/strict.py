"""The one strictness rule of every config dataclass (``ModelConfig``, ``TrainConfig``): an unknown field
name is an error that names the closest known ones, never ignored."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable
from typing import Any

__all__ = ["check_field_names"]


def check_field_names(cls: Any, names: Iterable[str], what: str) -> None:
    """Raise ValueError if any of ``names`` is not a field of the dataclass ``cls``.

    ``what`` names a field in the message, e.g. "training config key" gives
    ``unknown training config key 'lr_rate' (did you mean lr?)``; with no close match the known names follow.
    """
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = [name for name in names if name not in known]
    if not unknown:
        return
    described = []
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        described.append(f"{name!r}" + (f" (did you mean {', '.join(close)}?)" if close else ""))
    known_list = "" if all("did you mean" in d for d in described) else f"; known: {', '.join(known)}"
    raise ValueError(f"unknown {what} {', '.join(described)}{known_list}")
