"""A tracker's library is an optional extra of the package: say how to install it when it is missing."""

from __future__ import annotations

import importlib

from gfocal.engine.build import TrainSetupError

__all__ = ["require_extra"]


def require_extra(module: str, extra: str, library: str) -> None:
    """Import ``module`` or raise one clear line, e.g.
    ``--log tensorboard needs TensorBoard: pip install "gfocal[tensorboard]"``. Imported, not only looked up:
    a library that is present but broken (a missing dependency of its own) fails here too, before training."""
    try:
        importlib.import_module(module)
    except ImportError as error:
        raise TrainSetupError(f'--log {extra} needs {library}: pip install "gfocal[{extra}]"') from error
