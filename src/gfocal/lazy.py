"""Package exports imported on first use (PEP 562), so that reading a package's plain-data module (the CLI's
recipes and variants) does not load torch and ``gfocal --help`` stays quick."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, homes: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package`` whose public names live in its submodules.

    ``homes`` maps each public name to the submodule that defines it, e.g. ``{"train": "trainer"}``.
    """

    def __getattr__(name: str) -> Any:
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{homes[name]}"), name)

    def __dir__() -> list[str]:
        return sorted([*vars(importlib.import_module(package)), *homes])

    return __getattr__, __dir__
