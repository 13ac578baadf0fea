"""A tracker's library is an optional extra of the package: say how to install it when it is missing."""

from __future__ import annotations

import importlib.util

from gfocal.engine.build import TrainSetupError

__all__ = ["require_extra"]


def require_extra(module: str, extra: str, library: str) -> None:
    """Raise one clear line unless ``module`` is importable, e.g.
    ``--log tensorboard needs TensorBoard: pip install "gfocal[tensorboard]"``."""
    if importlib.util.find_spec(module) is None:
        raise TrainSetupError(f'--log {extra} needs {library}: pip install "gfocal[{extra}]"')
